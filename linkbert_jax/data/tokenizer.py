"""The tokenizer of a build: a local HF tokenizer dir, or WordPiece trained on the corpus.

Whatever is used is saved to ``OUTPUT_DIR/tokenizer/`` as a Hugging Face tokenizer
directory (loadable by ``transformers.AutoTokenizer``), so training and export use the same
one; workers load the fast ``tokenizers.Tokenizer`` from its ``tokenizer.json``.
"""
from __future__ import annotations

import hashlib
import os
from typing import Iterable

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_fast(tokenizer_dir: str):
    """The raw fast tokenizer, with truncation and padding off (segments are cut later)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def copy_pretrained(src_dir: str, dst_dir: str) -> None:
    """Re-saves a local HF tokenizer directory (never downloads)."""
    from transformers import AutoTokenizer

    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f"{src_dir}: tokenizer directory not found")
    tok = AutoTokenizer.from_pretrained(src_dir, local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{src_dir}: a fast tokenizer (tokenizer.json) is required")
    tok.save_pretrained(dst_dir)


def train_wordpiece(texts: Iterable[str], vocab_size: int, dst_dir: str,
                    lowercase: bool = True) -> None:
    """BERT-style WordPiece vocabulary trained on ``texts``, saved as a HF tokenizer dir."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                               show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer's vocabulary is deterministic but its ids are not (they follow a hash
    # map's order, which changes from run to run): number it canonically, specials first,
    # then the tokens in sorted order. WordPiece only looks tokens up, so this changes no
    # tokenization, and the same corpus always gives the same ids (byte-identical shards).
    trained = tok.get_vocab()
    order = list(SPECIALS) + sorted(t for t in trained if t not in SPECIALS)
    tok.model = models.WordPiece({t: i for i, t in enumerate(order)}, unk_token="[UNK]")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    BertTokenizerFast(tokenizer_object=tok, do_lower_case=lowercase).save_pretrained(dst_dir)


def describe(tokenizer_dir: str) -> dict:
    """Vocabulary size, special ids and a hash of the vocabulary (id order)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    vocab = tok.get_vocab()
    h = hashlib.sha256()
    for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        h.update(token.encode("utf-8") + b"\n")
    special = {name: getattr(tok, f"{name}_token_id") for name in
               ("cls", "sep", "pad", "mask", "unk")}
    missing = [k for k in ("cls", "sep") if special[k] is None]
    if missing:
        raise ValueError(f"{tokenizer_dir}: tokenizer has no {'/'.join(missing)} token")
    return {"vocab_size": len(vocab), "special_ids": special,
            "vocab_sha256": h.hexdigest(), "class": type(tok).__name__}
