"""Hugging Face conversion both ways: real checkpoint, round trips, layouts, errors
(the export command: test_convert_tool.py)."""
import json
import logging
import os
import re
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import numpy as np
import pytest

from helpers.exports import ODD, assert_bitwise_equal, random_params
from linkbert_jax.hf import convert, hf_torch
from linkbert_jax.model import LinkBert, ModelConfig
from linkbert_jax.data.samples import minilm_dir

import torch
import transformers
from safetensors.numpy import load_file, save_file  # noqa: E402

SENTENCES = ["LinkBERT pretrains on documents and the hyperlinks between them.",
             "A short one.",
             "Hugging Face checkpoints load in PyTorch, and this sentence is longer than "
             "the others so that the batch needs padding."]
TASK_HEADS = {  # Auto class -> the head weights it creates
    "AutoModelForSequenceClassification": {"classifier.weight", "classifier.bias"},
    "AutoModelForQuestionAnswering": {"qa_outputs.weight", "qa_outputs.bias"},
    "AutoModelForTokenClassification": {"classifier.weight", "classifier.bias"},
    "AutoModelForMultipleChoice": {"classifier.weight", "classifier.bias"},
}


def tokenize(model_dir, sentences=SENTENCES):
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    return tok(sentences, padding=True, return_tensors="np", return_token_type_ids=True)


def jax_apply(cfg, params, enc, positions=None):
    fn = jax.jit(lambda p: LinkBert(cfg).apply(
        {"params": p}, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
        positions, deterministic=True))
    return fn(params)


def torch_inputs(enc):
    return {k: torch.from_numpy(np.asarray(enc[k], np.int64))
            for k in ("input_ids", "attention_mask", "token_type_ids")}


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ----------------------------------------------------------------------------- real checkpoint


@pytest.fixture(scope="module")
def minilm():
    path = minilm_dir()
    loaded = convert.load_hf(path)
    return path, loaded.config, loaded.params, loaded


def test_minilm_loads_and_matches_automodel(minilm):
    path, config, params, info = minilm
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (384, 6, 30522)
    # A BertModel checkpoint: the MLM and DRP heads are initialised and reported.
    assert any(k.startswith("cls.predictions") for k in info.initialized)
    assert {"drp.weight", "drp.bias"} <= set(info.initialized)
    assert not any(k.startswith("bert.") for k in info.initialized)

    enc = tokenize(path)
    assert (enc["attention_mask"] == 0).any()  # padding in the batch
    out = jax_apply(config, params, enc)
    real = enc["attention_mask"].astype(bool)
    refs, diffs = {}, {}
    for impl in ("eager", "sdpa"):
        model = transformers.AutoModel.from_pretrained(path, attn_implementation=impl).eval()
        with torch.no_grad():
            refs[impl] = model(**torch_inputs(enc))
        h = np.abs(np.asarray(out.last_hidden_state) - refs[impl].last_hidden_state.numpy())
        diffs[impl] = {"hidden": float(h[real].max()), "hidden_at_padding": float(h[~real].max()),
                       "pooled": max_diff(out.pooled_output, refs[impl].pooler_output)}
    spread = np.abs(refs["eager"].last_hidden_state.numpy()
                    - refs["sdpa"].last_hidden_state.numpy())[~real].max()
    print("MiniLM max abs diff:", diffs, "HF eager vs sdpa at padding:", spread)
    for d in diffs.values():
        assert d["hidden"] < 1e-5 and d["pooled"] < 1e-5, diffs
        # Outputs at padded positions are never used; their values are ill-conditioned
        # (the [PAD] embedding) and HF's own eager and sdpa paths disagree there as much.
        assert d["hidden_at_padding"] < max(1e-3, 3 * spread), diffs


def test_minilm_missing_heads_are_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="linkbert_jax.hf.convert"):
        convert.load_hf(minilm_dir())
    assert re.search(r"no mlm/drp weights; initialised", caplog.text), caplog.text


def test_minilm_save_load_bitwise(minilm, tmp_path):
    path, config, params, _ = minilm
    out = str(tmp_path / "minilm")
    convert.save_hf(config, params, out, tokenizer=path)
    original = load_file(os.path.join(path, "model.safetensors"))
    saved = load_file(os.path.join(out, "model.safetensors"))
    for k, v in original.items():
        if k == "embeddings.position_ids":
            continue
        assert saved["bert." + k].tobytes() == v.tobytes(), k
    back = convert.load_hf(out)
    config2, params2 = back.config, back.params
    assert config2 == config
    assert_bitwise_equal(params2, params)
    model, info = transformers.AutoModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    # The tokenizer came along and tokenizes as the original does.
    np.testing.assert_array_equal(tokenize(out)["input_ids"], tokenize(path)["input_ids"])


# ----------------------------------------------------------------------------- JAX -> HF -> JAX


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = ModelConfig(**ODD)
    params = random_params(cfg)
    out = str(tmp_path_factory.mktemp("odd") / "hf")
    convert.save_hf(cfg, params, out)
    return cfg, params, out


def test_round_trip_bitwise(exported):
    cfg, params, out = exported
    back = convert.load_hf(out)
    cfg2, params2 = back.config, back.params
    assert cfg2 == cfg
    assert_bitwise_equal(params2, params)
    # Scanned load == stacked params; scanned and unscanned export the same HF weights.
    back = convert.load_hf(out, scan_layers=True)
    scfg, sparams = back.config, back.params
    assert scfg == cfg.replace(scan_layers=True)
    assert_bitwise_equal(sparams, convert.stack_layers(params))
    a = convert.to_hf_state_dict(cfg, params)
    b = convert.to_hf_state_dict(scfg, sparams)
    assert sorted(a) == sorted(b)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert_bitwise_equal(convert.unstack_layers(sparams), params)


def test_export_layout(exported):
    cfg, params, out = exported
    w = load_file(os.path.join(out, "model.safetensors"))
    assert all(v.dtype == np.float32 for v in w.values())
    assert w["bert.embeddings.word_embeddings.weight"].shape == (1001, 48)  # padding stripped
    np.testing.assert_array_equal(w["cls.predictions.bias"], params["mlm"]["bias"][:1001])
    np.testing.assert_array_equal(w["cls.predictions.decoder.bias"], w["cls.predictions.bias"])
    assert w["drp.weight"].shape == (3, 48) and w["drp.bias"].shape == (3,)
    with open(os.path.join(out, "config.json")) as f:
        hf = json.load(f)
    assert hf["model_type"] == "bert" and hf["vocab_size"] == 1001
    assert hf["tie_word_embeddings"] is True


def test_exported_logits_match_transformers(exported):
    cfg, params, out = exported
    diffs = hf_torch.verify_hf(cfg, params, out)
    print("random odd model, max abs diff JAX vs transformers:", diffs)
    assert set(diffs) == {"hidden", "pooled", "mlm", "drp"}
    assert all(v < 1e-5 for v in diffs.values()), diffs


def test_auto_classes_load_without_missing_encoder_weights(exported):
    cfg, params, out = exported
    encoder_or_mlm = re.compile(r"^(bert\.)?(embeddings|encoder)\.|^cls\.predictions\.")
    info = hf_torch.load_info_torch(out, "AutoModel")
    assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    info = hf_torch.load_info_torch(out, "AutoModelForMaskedLM")
    assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    assert set(info["unexpected_keys"]) <= {"bert.pooler.dense.weight", "bert.pooler.dense.bias",
                                            "drp.weight", "drp.bias"}
    info = hf_torch.load_info_torch(out, "BertForPreTraining")
    assert info["missing_keys"] == ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    assert info["unexpected_keys"] == ["drp.bias", "drp.weight"]
    for auto, head in TASK_HEADS.items():
        info = hf_torch.load_info_torch(out, auto)
        assert set(info["missing_keys"]) == head, auto
        assert not [k for k in info["unexpected_keys"] if encoder_or_mlm.match(k)
                    and not k.startswith("cls.")], auto
        assert info["mismatched_keys"] == [], auto


def test_bf16_export(exported, tmp_path):
    cfg, params, _ = exported
    out = str(tmp_path / "bf16")
    convert.save_hf(cfg, params, out, dtype="bfloat16")
    model = transformers.AutoModel.from_pretrained(out)
    assert model.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    params2 = convert.load_hf(out).params
    w = params2["encoder"]["layer_1"]["intermediate"]["kernel"]
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, params["encoder"]["layer_1"]["intermediate"]["kernel"],
                               rtol=1e-2, atol=1e-3)


# ----------------------------------------------------------------------------- HF layouts


@pytest.fixture(scope="module")
def hf_models():
    cfg = ModelConfig(**ODD)
    hf_cfg = hf_torch.config_to_hf(cfg)
    torch.manual_seed(0)
    mlm = transformers.BertForMaskedLM(hf_cfg).eval()
    with torch.no_grad():
        mlm.cls.predictions.bias.normal_()  # make the bias matter
    pre = transformers.BertForPreTraining(hf_cfg).eval()
    return cfg, mlm, pre


def _check_mlm_parity(cfg, params, hf_model):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.vocab_size, (2, 10))
    enc = {"input_ids": ids, "attention_mask": np.ones_like(ids),
           "token_type_ids": np.zeros_like(ids)}
    enc["attention_mask"][1, 6:] = 0
    out = jax_apply(cfg, params, enc, np.broadcast_to(np.arange(10), (2, 10)))
    with torch.no_grad():
        r = hf_model(**torch_inputs(enc))
        ref = r.logits if hasattr(r, "logits") else r.prediction_logits
    assert max_diff(np.asarray(out.mlm_logits)[..., :cfg.vocab_size], ref) < 1e-5


def test_load_bert_for_masked_lm(hf_models, tmp_path):
    cfg, mlm, _ = hf_models
    mlm.save_pretrained(tmp_path)
    info = convert.load_hf(str(tmp_path))
    cfg2, params = info.config, info.params
    assert cfg2 == cfg
    # BertForMaskedLM has no pooler: it and the DRP head are initialised.
    assert sorted(info.initialized) == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                           "drp.bias", "drp.weight"]
    _check_mlm_parity(cfg, params, mlm)


def test_load_bert_for_pretraining_sharded(hf_models, tmp_path):
    cfg, _, pre = hf_models
    pre.save_pretrained(tmp_path, max_shard_size="100KB")
    assert os.path.exists(tmp_path / "model.safetensors.index.json")
    info = convert.load_hf(str(tmp_path))
    params = info.params
    assert sorted(info.initialized) == ["drp.bias", "drp.weight"]
    # BERT's 2-way NSP is not the 3-way DRP head: ignored, reported.
    assert info.ignored == ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    np.testing.assert_array_equal(params["pooler"]["kernel"],
                                  pre.bert.pooler.dense.weight.detach().numpy().T)
    _check_mlm_parity(cfg, params, pre)


def test_load_pytorch_bin_with_legacy_keys(hf_models, tmp_path):
    cfg, mlm, _ = hf_models
    mlm.config.save_pretrained(tmp_path)
    sd = {k: v.clone() for k, v in mlm.state_dict().items()}
    sd["bert.embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings)[None]
    for k in [k for k in sd if k.endswith("LayerNorm.weight")]:  # TF-era names
        sd[k.replace("LayerNorm.weight", "LayerNorm.gamma")] = sd.pop(k)
    for k in [k for k in sd if k.endswith("LayerNorm.bias")]:
        sd[k.replace("LayerNorm.bias", "LayerNorm.beta")] = sd.pop(k)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    params = convert.load_hf(str(tmp_path)).params
    _check_mlm_parity(cfg, params, mlm)


def test_overrides():
    loaded = convert.load_hf(minilm_dir(), dtype="bfloat16", remat="full",
                             vocab_pad_multiple=64, scan_layers=True)
    cfg, params = loaded.config, loaded.params
    assert (cfg.dtype, cfg.remat, cfg.scan_layers, cfg.padded_vocab_size) == (
        "bfloat16", "full", True, 30528)
    assert params["embeddings"]["word_embeddings"]["embedding"].shape == (30528, 384)
    assert params["encoder"]["layers"]["intermediate"]["kernel"].shape == (6, 384, 1536)
    with pytest.raises(convert.ConversionError, match="hidden_size"):
        convert.load_hf(minilm_dir(), hidden_size=128)
    with pytest.raises(convert.ConversionError, match="unknown"):
        convert.load_hf(minilm_dir(), not_a_field=1)


# ----------------------------------------------------------------------------- errors


def _copy_odd(exported, tmp_path):
    _, _, out = exported
    dst = tmp_path / "hf"
    shutil.copytree(out, dst)
    return dst


def test_error_no_config(tmp_path):
    with pytest.raises(convert.ConversionError, match=r"no config\.json"):
        convert.load_hf(str(tmp_path))
    with pytest.raises(convert.ConversionError, match="not a directory"):
        convert.load_hf(str(tmp_path / "absent"))


def test_error_not_bert(exported, tmp_path):
    dst = _copy_odd(exported, tmp_path)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["model_type"] = "roberta"
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(convert.ConversionError, match=r"config\.json: model_type 'roberta'"):
        convert.load_hf(str(dst))


def test_error_wrong_shape(exported, tmp_path):
    dst = _copy_odd(exported, tmp_path)
    w = load_file(str(dst / "model.safetensors"))
    w["bert.encoder.layer.1.intermediate.dense.weight"] = np.zeros((99, 48), np.float32)
    save_file(w, str(dst / "model.safetensors"))
    with pytest.raises(convert.ConversionError,
                       match=r"model\.safetensors: bert\.encoder\.layer\.1\.intermediate\.dense"
                             r"\.weight has shape \(99, 48\), expected \(100, 48\)"):
        convert.load_hf(str(dst))


def test_error_missing_encoder_weight(exported, tmp_path):
    dst = _copy_odd(exported, tmp_path)
    w = load_file(str(dst / "model.safetensors"))
    del w["bert.encoder.layer.0.attention.self.key.bias"]
    save_file(w, str(dst / "model.safetensors"))
    with pytest.raises(convert.ConversionError, match=r"missing encoder weight "
                       r"bert\.encoder\.layer\.0\.attention\.self\.key\.bias"):
        convert.load_hf(str(dst))


def test_error_extra_layer_and_no_weights(exported, tmp_path):
    dst = _copy_odd(exported, tmp_path)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["num_hidden_layers"] = 1
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(convert.ConversionError, match=r"encoder\.layer\.1\..* do not fit"):
        convert.load_hf(str(dst))
    os.remove(dst / "model.safetensors")
    with pytest.raises(convert.ConversionError, match="no model.safetensors"):
        convert.load_hf(str(dst))
