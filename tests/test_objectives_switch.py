"""Issue 21, the objective switch (``config.objective``: drp | nsp | mlm) end to end: real
builder output, a few trainer steps, export, reload with ``transformers``, import and
fine-tuning's ``--init``; an arm whose data does not match its config is one error line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import transformers
from safetensors.numpy import load_file

from helpers import REPO
from helpers.corpora import ring_corpus, run_build
from helpers.training import TWO_STEPS, metric_rows
from linkbert_jax import config_defaults, main
from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.data import arm_checks
from linkbert_jax.hf import convert, export
from linkbert_jax.config_defaults import load_config_file
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import pretrained
from linkbert_jax.model import LinkBert
from linkbert_jax.data.samples import minilm_dir

TRAIN = {**TWO_STEPS, "eval_at_end": True, "eval_batch_size": 8, "eval_max_batches": 2}
HIDDEN = TRAIN["model.hidden_size"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("objective")


def _build(root, name: str, *flags) -> str:
    corpus = ring_corpus(root / "corpus.jsonl")
    out = root / f"data_{name}"
    run_build("--input", corpus, "--format", "jsonl", "--output_dir", out, "--tokenizer",
              minilm_dir(), "--max_seq_length", 64, "--num_shards", 1, "--num_eval_shards", 1,
              "--eval_fraction", 0.25, "--seed", 1, *flags)
    return str(out)


@pytest.fixture(scope="module")
def data(root):
    """Two builds of one corpus: LinkBERT's 3-way pairs and NSP's 2-way ones."""
    return {"drp": _build(root, "drp"), "nsp": _build(root, "nsp", "--relation_probs",
                                                        "1/2,1/2,0")}


def _train_and_export(root, data_dir: str, objective: str) -> tuple[str, str]:
    wd, out = str(root / f"wd_{objective}"), str(root / f"hf_{objective}")
    config = load_config_file("tiny", dict(TRAIN, objective=objective, data_dir=data_dir))
    assert main.run(config, wd) == 0
    assert export.main(["--workdir", wd, "--output_dir", out]) == 0  # verifies too
    return wd, out


@pytest.fixture(scope="module")
def nsp(root, data):
    return _train_and_export(root, data["nsp"], "nsp")


@pytest.fixture(scope="module")
def mlm(root, data):
    return _train_and_export(root, data["drp"], "mlm")


def _pair(out: str) -> dict:
    tok = transformers.AutoTokenizer.from_pretrained(out)
    return dict(tok(["River mountain city music.", "Paper protein cell history."],
                    ["King language science theory.", "Water stone light number war."],
                    return_tensors="np", padding=True))


def _ours(wd: str, enc: dict):
    """Our model at the workdir's checkpoint: (params, output at every position)."""
    cfg, params, _ = checkpoints.load_params(wd)
    L = enc["input_ids"].shape[1]
    pos = np.broadcast_to(np.arange(L), enc["input_ids"].shape)
    out = LinkBert(cfg.replace(dtype="float32")).apply(
        {"params": params}, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
        pos, deterministic=True)
    return cfg, params, out


def _theirs(cls, out: str, enc: dict):
    import torch
    model, info = cls.from_pretrained(out, output_loading_info=True,
                                      attn_implementation="eager")
    with torch.no_grad():
        res = model.eval()(**{k: torch.from_numpy(v) for k, v in enc.items()})
    return model, info, res


def _max_diff(a, t) -> float:
    return float(np.abs(np.asarray(a, np.float64)[..., :t.shape[-1]]
                        - t.double().numpy()).max())


def test_nsp_is_two_way_end_to_end(data, nsp):
    wd, out = nsp
    manifest = json.load(open(os.path.join(data["nsp"], "manifest.json")))
    assert manifest["relations"]["linked"] == 0 < manifest["relations"]["random"]
    assert json.load(open(os.path.join(wd, "config.json")))["objective"] == "nsp"
    enc = _pair(out)
    cfg, params, ours = _ours(wd, enc)
    assert cfg.num_relations == 2 and params["drp"]["kernel"].shape == (HIDDEN, 2)
    for row in metric_rows(wd):  # train and eval rows: the two relations NSP predicts
        prefix = "eval_" if "eval_mlm_loss" in row else ""
        assert {k for k in row if k.startswith(prefix + "drp_accuracy_")} == {
            prefix + "drp_accuracy_contiguous", prefix + "drp_accuracy_random"}, row
    hf = json.load(open(os.path.join(out, "config.json")))
    assert (hf["architectures"], hf["num_relations"], hf["relation_labels"]) == (
        ["BertForPreTraining"], 2, ["contiguous", "random"])
    keys = set(load_file(os.path.join(out, "model.safetensors")))
    assert "cls.seq_relationship.weight" in keys and not any(k.startswith("drp.") for k in keys)
    model, info, theirs = _theirs(transformers.BertForPreTraining, out, enc)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.cls.seq_relationship.out_features == 2
    assert theirs.seq_relationship_logits.shape == (2, 2)
    assert _max_diff(ours.drp_logits, theirs.seq_relationship_logits) < 1e-5
    assert _max_diff(ours.mlm_logits, theirs.prediction_logits) < 1e-4
    assert "objective `nsp`" in open(os.path.join(out, "README.md")).read()


def test_mlm_only_has_no_relation_head(mlm):
    wd, out = mlm
    enc = _pair(out)
    cfg, params, ours = _ours(wd, enc)
    assert cfg.num_relations == 0 and "drp" not in params and ours.drp_logits is None
    rows = metric_rows(wd)
    assert rows and any("eval_mlm_loss" in r for r in rows)
    assert not [k for r in rows for k in r if "drp" in k]
    hf = json.load(open(os.path.join(out, "config.json")))
    assert (hf["architectures"], hf["num_relations"]) == (["BertForMaskedLM"], 0)
    keys = set(load_file(os.path.join(out, "model.safetensors")))
    assert not [k for k in keys if k.startswith(("drp.", "cls.seq_relationship"))], keys
    _, info, theirs = _theirs(transformers.BertForMaskedLM, out, enc)
    assert not info["missing_keys"], info
    assert _max_diff(ours.mlm_logits, theirs.logits) < 1e-4
    loaded = convert.load_hf(out)
    assert loaded.config.num_relations == 0 and "drp" not in loaded.params
    assert loaded.initialized == [] and loaded.ignored == []
    assert "objective `mlm`" in open(os.path.join(out, "README.md")).read()


def test_import_takes_the_nsp_head_or_the_head_asked_for(nsp, tmp_path):
    wd, out = nsp
    _, params, _ = checkpoints.load_params(wd)
    loaded = convert.load_hf(out)  # config.json's num_relations: 2
    assert loaded.config.num_relations == 2 and loaded.initialized == []
    np.testing.assert_array_equal(loaded.params["drp"]["kernel"], params["drp"]["kernel"])
    # A BERT checkpoint (no num_relations in its config) continued with objective nsp:
    # BERT's own NSP head is taken; with DRP (3-way) it is left out and DRP drawn.
    bert = tmp_path / "bert"
    os.makedirs(bert)
    for name in ("model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(out, name)):
            os.link(os.path.join(out, name), bert / name)
    hf = json.load(open(os.path.join(out, "config.json")))
    json.dump({k: v for k, v in hf.items() if k not in ("num_relations", "relation_labels")},
              open(bert / "config.json", "w"))
    as_nsp = convert.load_hf(str(bert), num_relations=2)
    assert as_nsp.initialized == []
    np.testing.assert_array_equal(as_nsp.params["drp"]["bias"], params["drp"]["bias"])
    as_drp = convert.load_hf(str(bert))
    assert sorted(as_drp.initialized) == ["drp.bias", "drp.weight"]
    assert as_drp.ignored == ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    assert convert.load_hf(str(bert), num_relations=0).config.num_relations == 0


@pytest.mark.parametrize("objective", ["nsp", "mlm"])
def test_finetuning_init_takes_each_export_and_workdir(objective, request):
    wd, out = request.getfixturevalue(objective)
    _, params, _ = checkpoints.load_params(wd)
    for path in (out, wd):
        pre = pretrained.load(path)
        assert sorted(pre.params) == ["embeddings", "encoder", "pooler"]
        np.testing.assert_array_equal(pre.params["pooler"]["kernel"], params["pooler"]["kernel"])
        assert os.path.isfile(os.path.join(pre.tokenizer_dir, "tokenizer.json"))


def _main(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "linkbert_jax.main", *args], cwd=REPO,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_arm_on_data_it_does_not_match_is_one_line_rc_2(data, tmp_path):
    """Through the CLI, all at once (each process starts JAX and TensorFlow): the start
    line names the objective and data options, the one error line both sides."""
    drp = f"--config.data_dir={data['drp']}"
    cases = [  # (arguments, in the start line, in the error line)
        (["--config", "tiny", "--config.objective=nsp"],
         "objective nsp (2-way head: contiguous, random); data_options any",
         ["error: objective nsp (BERT's 2-way contiguous/random) but", "has linked pairs (train",
          "build its data with --relation_probs 1/2,1/2,0"]),
        (["--config", "ablations:tfidf"],
         "objective drp (3-way head: contiguous, random, linked); data_options {",
         ["error: the data does not match the config: config.data_options.link_source is "
          "'tfidf' but", "manifest.json has link_source 'hyperlinks'"]),
        (["--config", "tiny", "--config.data_options.link_sampling=uniform"],
         "data_options {'link_sampling': 'uniform'}",
         ["config.data_options.link_sampling is 'uniform'", "has link_sampling "
          "'inverse_in_degree'; build the data with --link_sampling uniform"]),
        (["--config", "tiny", "--config.objective=bert"], None,
         ["error: objective 'bert' is not one of drp|nsp|mlm (--config.objective)"]),
    ]
    procs = [_main(*args, drp, "--workdir", str(tmp_path / str(i)))
             for i, (args, _, _) in enumerate(cases)]
    for (_, start, parts), p in zip(cases, procs):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 2 and "Traceback" not in err, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err[-3000:]
        assert all(part in errors[0] for part in parts), (parts, errors)
        assert start is None or start in err, (start, err[-3000:])


# ----------------------------------------------------------------------------- units

def _config(**kw):
    c = load_config_file("tiny")
    for k, v in kw.items():
        c[k] = v
    return c


def test_old_manifest_options_count_as_their_defaults():
    old = {"options": {"seed": 1}}  # built before the link switches existed
    assert [arm_checks.data_option(old, k) for k in arm_checks.SWITCHES] == [
        "hyperlinks", 5, "inverse_in_degree"]
    c = load_config_file("ablations:linkbert")
    arm_checks.check(c, old)  # LinkBERT's own options: no error
    arm_checks.check(load_config_file("ablations:tfidf"), {})  # not the builder's: no record
    with pytest.raises(ConfigError, match="link_sampling is 'uniform'"):
        arm_checks.check(load_config_file("ablations:no_diversity"), old)
    c.data_options["max_seq_length"] = 128
    with pytest.raises(ConfigError, match="records no max_seq_length"):
        arm_checks.check(c, old)


def test_objective_against_relation_counts(caplog):
    linked = {"relations": {"contiguous": 5, "random": 5, "linked": 4}}
    none = {"relations": {"contiguous": 5, "random": 5, "linked": 0},
            "relations_eval": {"contiguous": 1, "random": 1, "linked": 0}}
    with pytest.raises(ConfigError, match="linked pairs \\(train 4\\)"):
        arm_checks.check(_config(objective="nsp"), linked)
    arm_checks.check(_config(objective="nsp"), none)
    arm_checks.check(_config(objective="mlm"), linked)
    caplog.set_level("WARNING", logger="linkbert_jax")
    logger = arm_checks.log
    logger.addHandler(caplog.handler)
    try:
        arm_checks.check(_config(objective="drp"), linked)
        assert not caplog.records
        arm_checks.check(_config(objective="drp"), none)
    finally:
        logger.removeHandler(caplog.handler)
    assert "no linked pairs" in caplog.records[0].getMessage()


def test_each_ablation_arm_is_its_seed_config_with_objective_and_data_options():
    from linkbert_jax.configs import ablations
    doc = open(config_defaults.config_file("ablations")).read()
    rows = {"linkbert": ("tiny", "drp", {}), "no_drp": ("base", "mlm", {}),
            "no_diversity": ("tiny", "drp", {"link_sampling": "uniform"}),
            "tfidf": ("tiny", "drp", {"link_source": "tfidf", "link_k": 5}),
            "random": ("tiny", "drp", {"link_source": "random", "link_k": 5}),
            "nsp": ("tiny", "nsp", {})}
    assert set(ablations.ARMS) == set(rows)
    for arm, (seed, objective, changed) in rows.items():
        c, base = load_config_file(f"ablations:{arm}"), load_config_file(seed)
        assert (c.objective, base.objective) == (objective, "drp")
        assert {k: v for k, v in dict(c.data_options).items() if v is not None} == {
            "link_source": "hyperlinks", "link_sampling": "inverse_in_degree", **changed}
        differ = {k for k in set(c.to_dict()) | set(base.to_dict())
                  if c.to_dict().get(k) != base.to_dict().get(k)}
        assert differ == {"objective", "data_options"} - ({"objective"} if objective == "drp"
                                                           else set()), (arm, differ)
        flags = ablations.build_flags(arm)
        assert flags == [f"--{k}={v}" for k, v in sorted(changed.items())] + (
            ["--relation_probs=1/2,1/2,0"] if objective == "nsp" else [])
        assert f"\n{arm} " in doc  # a row of the docstring's table
        arm_checks.check(c, {})  # the AOT check's stand-in manifest (not the builder's)
    assert "python -m linkbert_jax.main --config ablations:tfidf " in doc
    assert ablations.slice_of("tfidf") == "v4-8" and ablations.slice_of("no_drp") == "v4-64"
    with pytest.raises(ValueError, match="unknown ablation arm 'bert'; one of linkbert"):
        load_config_file("ablations:bert")
