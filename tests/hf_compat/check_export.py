"""Load an export as a LinkBERT user would, in whatever transformers this Python has.

Stand-alone (torch, transformers, numpy only: it runs in the old-transformers venvs that
tests/test_hf_compat.py builds). Prints one JSON object:
``{"transformers": version, "classes": {AutoClass: {"missing": [...], "unexpected": [...],
"mismatched": [...]}}, "diff": {output: max abs diff to the reference}, "tokenizers":
[fast class, slow class], "ids_fast": [...], "ids_slow": [...]}``.

    python check_export.py EXPORT_DIR REFERENCE.npz TEXTS.json [OTHER_EXPORT_DIR]

With OTHER_EXPORT_DIR, also ``"other_error"``: the error ``AutoModel`` raises on it (null
when it loads).
"""
import json
import sys

import numpy as np
import torch
import transformers

AUTO_CLASSES = ("AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
                "AutoModelForTokenClassification", "AutoModelForQuestionAnswering",
                "AutoModelForMultipleChoice")


def report(export_dir, reference, texts_file, other=None) -> dict:
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the load reports are in the result
    try:
        return _report(export_dir, reference, texts_file, other)
    finally:
        transformers.logging.set_verbosity(verbosity)


def _report(export_dir, reference, texts_file, other):
    ref = np.load(reference)
    with open(texts_file) as f:
        texts = json.load(f)
    out = {"transformers": transformers.__version__, "classes": {}}
    models = {}
    for name in AUTO_CLASSES:
        model, info = getattr(transformers, name).from_pretrained(
            export_dir, output_loading_info=True)
        models[name] = model.eval()
        out["classes"][name] = {k: sorted(str(x) for x in info.get(k, []))
                                for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    inputs = {k: torch.from_numpy(ref[k].astype(np.int64))
              for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        enc = models["AutoModel"](**inputs)
        mlm = models["AutoModelForMaskedLM"](**inputs)
    out["diff"] = {k: float(np.abs(x.double().numpy() - ref[k]).max()) for k, x in (
        ("last_hidden_state", enc.last_hidden_state), ("pooled", enc.pooler_output),
        ("mlm_logits", mlm.logits))}
    fast = transformers.AutoTokenizer.from_pretrained(export_dir)
    slow = transformers.AutoTokenizer.from_pretrained(export_dir, use_fast=False)
    out["tokenizers"] = [type(fast).__name__, type(slow).__name__]
    out["ids_fast"] = fast(texts)["input_ids"]
    out["ids_slow"] = slow(texts)["input_ids"]
    if other:
        try:
            transformers.AutoModel.from_pretrained(other)
            out["other_error"] = None
        except OSError as e:
            out["other_error"] = f"OSError: {e}"
    return out


if __name__ == "__main__":
    print(json.dumps(report(*sys.argv[1:])))
