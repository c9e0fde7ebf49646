"""The tokenizer of a build: a local HF tokenizer dir, or WordPiece trained on the corpus.

Whatever is used is saved to ``OUTPUT_DIR/tokenizer/`` as a clean Hugging Face tokenizer
directory (:func:`save_clean`), so training and export use the same one; workers load the
fast ``tokenizers.Tokenizer`` from its ``tokenizer.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Optional

from linkbert_jax.errors import DataError

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_fast(tokenizer_dir: str):
    """The raw fast tokenizer, with truncation and padding off (segments are cut later)."""
    with open(os.path.join(tokenizer_dir, "tokenizer.json"), encoding="utf-8") as f:
        return from_json(f.read())


def from_json(tokenizer_json: str):
    """``load_fast`` from the text of a ``tokenizer.json`` (what Beam workers receive)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    tok.no_truncation()
    tok.no_padding()
    return tok


def copy_pretrained(src_dir: str, dst_dir: str) -> None:
    """Re-saves a local HF tokenizer directory, cleaned (never downloads)."""
    save_clean(src_dir, dst_dir)


# tokenizer_config.json keys that are arguments of one call, not of the tokenizer (a
# save after from_pretrained(..., max_length=128) or a padded call keeps them).
_CALL_ARGUMENTS = ("max_length", "stride", "truncation_strategy", "padding_strategy",
                   "pad_to_multiple_of", "local_files_only", "is_local", "return_tensors",
                   "cache_dir", "revision", "token", "trust_remote_code", "name_or_path")
_SPECIAL_NAMES = ("unk", "sep", "pad", "cls", "mask")


def save_clean(src_dir: str, dst_dir: str, model_max_length: Optional[int] = None) -> None:
    """A tokenizer directory both ``transformers`` tokenizer classes load alike, from any
    local HF tokenizer directory with a fast tokenizer.

    ``tokenizer.json`` without truncation or padding, ``tokenizer_config.json`` without
    call arguments, ``special_tokens_map.json``, and for a BERT WordPiece tokenizer
    ``vocab.txt`` with the slow ``BertTokenizer``'s options read from the normalizer.
    ``model_max_length`` (the model's positions) is used when the source sets none.
    """
    from transformers import AutoTokenizer

    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f"{src_dir}: tokenizer directory not found")
    try:
        tok = AutoTokenizer.from_pretrained(src_dir)
    except ValueError as e:  # transformers: no tokenizer it knows there
        raise DataError(f"{src_dir}: cannot load a tokenizer ({e})") from None
    if not getattr(tok, "is_fast", False):
        raise DataError(f"{src_dir}: a fast tokenizer (tokenizer.json) is required")
    specials = {f"{n}_token": str(getattr(tok, f"{n}_token")) for n in _SPECIAL_NAMES
                if getattr(tok, f"{n}_token", None) is not None}
    max_length = (tok.model_max_length if tok.model_max_length < 1e12 else None
                  ) or model_max_length
    if not _is_bert_wordpiece(tok.backend_tokenizer):
        tok.save_pretrained(dst_dir)  # then cleaned below
    write_bert_files(tok.backend_tokenizer, specials, dst_dir, max_length)


def _is_bert_wordpiece(backend) -> bool:
    spec = json.loads(backend.to_str())
    return (spec["model"]["type"] == "WordPiece"
            and (spec.get("normalizer") or {}).get("type") == "BertNormalizer")


def write_bert_files(backend, specials: dict, dst_dir: str,
                     model_max_length: Optional[int] = None) -> None:
    """Write ``backend`` (a ``tokenizers.Tokenizer``) and its special tokens as a clean
    HF tokenizer directory (see :func:`save_clean`)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(backend.to_str())  # a copy: the caller's stays as it is
    backend.no_truncation()
    backend.no_padding()
    os.makedirs(dst_dir, exist_ok=True)
    backend.save(os.path.join(dst_dir, "tokenizer.json"))
    _write_json(os.path.join(dst_dir, "special_tokens_map.json"), specials)
    spec = json.loads(backend.to_str())
    norm = spec.get("normalizer") or {}
    cfg_path = os.path.join(dst_dir, "tokenizer_config.json")
    if _is_bert_wordpiece(backend):
        _write_vocab(spec["model"]["vocab"], os.path.join(dst_dir, "vocab.txt"))
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": norm["lowercase"],
                  "strip_accents": norm["strip_accents"],
                  "tokenize_chinese_chars": norm["handle_chinese_chars"],
                  "do_basic_tokenize": True, "never_split": None, **specials,
                  "clean_up_tokenization_spaces": True}
    else:
        with open(cfg_path) as f:
            config = {k: v for k, v in json.load(f).items() if k not in _CALL_ARGUMENTS}
    if model_max_length:
        config["model_max_length"] = int(model_max_length)
    _write_json(cfg_path, config)


def _write_vocab(vocab: dict, path: str) -> None:
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise ValueError("WordPiece ids are not 0..n-1; cannot write vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in tokens)


def _write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def train_wordpiece(texts: Iterable[str], vocab_size: int, dst_dir: str,
                    lowercase: bool = True) -> None:
    """BERT-style WordPiece vocabulary trained on ``texts``, saved as a HF tokenizer dir."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer

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
    write_bert_files(tok, {f"{n}_token": f"[{n.upper()}]" for n in _SPECIAL_NAMES}, dst_dir)


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
        raise DataError(f"{tokenizer_dir}: tokenizer has no {'/'.join(missing)} token")
    return {"vocab_size": len(vocab), "special_ids": special,
            "vocab_sha256": h.hexdigest(), "class": type(tok).__name__}
