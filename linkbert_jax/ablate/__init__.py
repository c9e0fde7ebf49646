"""The paper's ablations on any corpus: the downstream link task (``linktask``)."""
