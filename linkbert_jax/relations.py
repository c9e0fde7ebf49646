"""The document relations of LinkBERT's pairs: ``[CLS] A [SEP] B [SEP]`` where B is the
contiguous next segment of A's document, a random other document's segment, or a
segment of a document A links to. Their names and label indices, in one place, for the
model's relation head, the objectives, the builder's records and the export."""

RELATIONS = ("contiguous", "random", "linked")  # names of the relation labels, in order
NUM_RELATIONS = len(RELATIONS)
CONTIGUOUS, RANDOM, LINKED = range(NUM_RELATIONS)
