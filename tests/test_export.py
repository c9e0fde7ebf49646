"""The export command: a complete, clean directory (config for old and new transformers,
fine-tuning dropout, tokenizer, model card); the latest complete and valid checkpoint; a
failed export leaves nothing behind and an existing export as it was."""
import hashlib
import json
import os
import re

import numpy as np
import pytest
import transformers
import yaml
from safetensors.numpy import load_file

from helpers.exports import TEXTS, make_workdir, run_export
from linkbert_jax.hf import convert, export, hf_torch, model_card
from linkbert_jax.model import LinkBert
from linkbert_jax.data.samples import minilm_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALL_ARGUMENTS = ("max_length", "local_files_only", "stride", "truncation_strategy",
                  "padding_strategy", "is_local")


def snapshot(path) -> dict:
    return {n: hashlib.sha256(open(os.path.join(path, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(path))}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Pretrained with dropout 0.0, continued from MiniLM (whose config has 0.1)."""
    wd = str(tmp_path_factory.mktemp("export") / "wd")
    cfg, saved = make_workdir(wd, init_from_hf=minilm_dir(), dropout=0.0)
    return wd, cfg, saved


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    wd, _, _ = workdir
    out = str(tmp_path_factory.mktemp("out") / "hf")
    args = ["--workdir", wd, "--output_dir", out, "--tokenizer", minilm_dir(), "--pytorch_bin"]
    assert export.main(args) == 0
    return out, args


def test_export_directory_is_complete(exported, workdir):
    out, _ = exported
    wd, cfg, saved = workdir
    assert sorted(os.listdir(out)) == sorted(export.EXPORT_FILES - {"added_tokens.json"})
    assert not [n for n in os.listdir(os.path.dirname(out)) if n.startswith(".")]
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    # Keys old (torch_dtype) and new (dtype) transformers read; fine-tuning dropout.
    assert config["torch_dtype"] == config["dtype"] == "float32"
    assert config["transformers_version"] == transformers.__version__
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.1
    loaded = convert.load_hf(out, scan_layers=True)  # the latest step, bitwise
    assert loaded.config.hidden_dropout_prob == 0.1
    np.testing.assert_array_equal(loaded.params["encoder"]["layers"]["output"]["kernel"],
                                  saved[9]["encoder"]["layers"]["output"]["kernel"])
    with open(os.path.join(out, export.STAMP_NAME)) as f:
        assert json.load(f)["step"] == 9


def test_pytorch_bin_holds_the_safetensors_weights(exported):
    import torch
    out, _ = exported
    bin_sd = torch.load(os.path.join(out, "pytorch_model.bin"), weights_only=True)
    st = load_file(os.path.join(out, "model.safetensors"))
    assert set(bin_sd) == set(st) | {"cls.predictions.decoder.weight"}
    for k, v in st.items():
        assert np.array_equal(bin_sd[k].numpy(), v), k


def assert_clean_tokenizer(path) -> tuple[dict, list]:
    """No truncation/padding in tokenizer.json, no call arguments in tokenizer_config.json,
    slow ids = fast ids on TEXTS. Returns the tokenizer config and the ids."""
    with open(os.path.join(path, "tokenizer.json")) as f:
        tok = json.load(f)
    assert tok["truncation"] is None and tok["padding"] is None
    with open(os.path.join(path, "tokenizer_config.json")) as f:
        tok_cfg = json.load(f)
    assert not [k for k in CALL_ARGUMENTS if k in tok_cfg], tok_cfg
    fast = transformers.AutoTokenizer.from_pretrained(path)
    slow = transformers.AutoTokenizer.from_pretrained(path, use_fast=False)
    ids = fast(TEXTS)["input_ids"]
    assert slow(TEXTS)["input_ids"] == ids
    return tok_cfg, ids


def test_tokenizer_is_clean_and_slow_equals_fast(exported):
    out, _ = exported
    tok_cfg, ids = assert_clean_tokenizer(out)
    assert tok_cfg["model_max_length"] == 512 and tok_cfg["do_lower_case"] is True
    with open(os.path.join(out, "special_tokens_map.json")) as f:
        assert json.load(f)["mask_token"] == "[MASK]"
    with open(os.path.join(out, "vocab.txt"), encoding="utf-8") as f:
        assert sum(1 for _ in f) == 30522
    assert ids == transformers.AutoTokenizer.from_pretrained(minilm_dir())(TEXTS)["input_ids"]


def test_model_card(exported, workdir):
    out, args = exported
    wd = workdir[0]
    with open(os.path.join(out, "README.md"), encoding="utf-8") as f:
        card = f.read()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "fill-mask"
    assert "license" in meta and "linkbert" in meta["tags"]
    assert "| dropout in pretraining | hidden 0.0, attention 0.0 |" in card
    assert "hidden 0.1, attention 0.1: for fine-tuning, from the starting checkpoint" in card
    assert "python -m linkbert_jax.hf.export " + " ".join(args) in card
    assert f"python -m linkbert_jax.main --config configs/tiny.py --workdir {wd}" in card
    assert "| train | 9 | 9.1000 | 0.0900 | 1.1000 | 0.4000 |" in card
    assert "1,530,872 in `BertModel`" in card


def test_card_snippets_run(exported, workdir):
    """The card's snippets, run as written against the export: the Auto classes load, the
    DRP logits match JAX; the DRP snippet in docs/convert.md is the same text."""
    out, _ = exported
    _, cfg, saved = workdir
    with open(os.path.join(out, "README.md"), encoding="utf-8") as f:
        card = f.read()
    snippet = re.search(r"```python\n(import os\n.*?)```", card, re.S).group(1)
    assert snippet == model_card.DRP_SNIPPET
    with open(os.path.join(REPO, "docs", "convert.md")) as f:
        doc = re.search(r"<!-- drp-snippet -->\s*```python\n(.*?)```", f.read(), re.S).group(1)
    assert doc == snippet
    auto = {}
    exec(model_card.AUTO_SNIPPET.replace('"path/to/hf_dir"', repr(out)), auto)  # noqa: S102
    assert type(auto["clf"]).__name__ == "BertForSequenceClassification"
    scope = {}
    exec(snippet.replace('"path/to/hf_dir"', repr(out)), scope)  # noqa: S102
    enc = transformers.AutoTokenizer.from_pretrained(out)(
        ["Segment A of a document."], ["A segment B."], return_tensors="np")
    ref = LinkBert(cfg).apply({"params": saved[9]}, enc["input_ids"], enc["attention_mask"],
                              enc["token_type_ids"], deterministic=True).drp_logits
    assert np.abs(np.asarray(ref) - scope["drp_logits"].numpy()).max() < 1e-5
    assert scope["relation"] in ("contiguous", "random", "linked")


def test_finetune_dropout_sources(tmp_path):
    assert export.finetune_dropout({}, None)[:2] == (0.1, 0.1)  # from scratch
    assert export.finetune_dropout({"init_from_hf": minilm_dir()}, 0.2)[:2] == (0.2, 0.2)
    start = tmp_path / "start"
    start.mkdir()
    (start / "config.json").write_text(json.dumps({
        "model_type": "bert", "hidden_dropout_prob": 0.15,
        "attention_probs_dropout_prob": 0.05}))
    h, a, source = export.finetune_dropout({"init_from_hf": str(start)}, None)
    assert (h, a) == (0.15, 0.05) and str(start) in source
    h, a, source = export.finetune_dropout({"init_from_hf": str(tmp_path / "gone")}, None)
    assert (h, a) == (0.1, 0.1) and "not readable" in source


def test_export_skips_an_incomplete_latest_checkpoint(tmp_path, capsys):
    wd = str(tmp_path / "wd")
    _, saved = make_workdir(wd)
    os.remove(os.path.join(wd, "checkpoints", "9", "_CHECKPOINT_METADATA"))
    out = tmp_path / "hf"
    rc, text, err = run_export(capsys, "--workdir", wd, "--output_dir", out, "--no_verify",
                               "--no_tokenizer")
    assert rc == 0, err
    assert "step 5" in text
    params = convert.load_hf(str(out), scan_layers=True).params
    np.testing.assert_array_equal(params["pooler"]["kernel"], saved[5]["pooler"]["kernel"])


def test_failed_export_leaves_nothing_and_keeps_the_old_one(workdir, tmp_path, capsys,
                                                             monkeypatch):
    wd = workdir[0]
    out = tmp_path / "hf"
    base = ["--workdir", wd, "--output_dir", out]
    rc, _, err = run_export(capsys, *base, "--step", "5", "--no_verify")
    assert rc == 0, err
    before = snapshot(out)
    monkeypatch.setattr(hf_torch, "verify_hf", lambda *a, **k: {"hidden": 0.5})
    rc, _, err = run_export(capsys, *base, "--overwrite")  # step 9, then verification fails
    assert rc == 2 and err.startswith("error: verification failed") and err.count("\n") == 1
    assert snapshot(out) == before  # the step-5 export, untouched
    assert sorted(os.listdir(tmp_path)) == ["hf"]  # no partial directory left
    rc, _, err = run_export(capsys, "--workdir", wd, "--output_dir", tmp_path / "new")
    assert rc == 2 and not os.path.exists(tmp_path / "new")  # no weights behind


def test_refuses_an_output_dir_with_other_files(workdir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, _, err = run_export(capsys, "--workdir", workdir[0], "--output_dir", out, "--no_verify")
    assert rc == 2 and "notes.txt" in err and err.count("\n") == 1
    assert os.listdir(out) == ["notes.txt"]


@pytest.mark.parametrize("how", ["copy", "wordpiece"])
def test_builder_tokenizer_is_clean(tmp_path, how):
    """The builder's tokenizer/ (which the export copies) is clean at the source."""
    from linkbert_jax.data import tokenizer
    out = str(tmp_path / "tokenizer")
    if how == "copy":  # MiniLM's tokenizer.json has truncation/padding at 128 baked in
        tokenizer.copy_pretrained(minilm_dir(), out)
    else:
        tokenizer.train_wordpiece(TEXTS * 20, 80, out)
    assert sorted(os.listdir(out)) == ["special_tokens_map.json", "tokenizer.json",
                                       "tokenizer_config.json", "vocab.txt"]
    assert_clean_tokenizer(out)
