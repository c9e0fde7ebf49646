"""python -m linkbert_jax.ablate end to end, in-process, on a small generated corpus: two
arms, one seed, a few steps; every arm scored on the common held-out split; a re-run
skips every stage; and the one-line errors of bad builds and mismatched data."""
import json
import shutil

import pytest

from helpers.corpora import random_link_corpus, run_build
from linkbert_jax.ablate import __main__ as ablate_cli
from linkbert_jax.ablate import arms, report, stages
from linkbert_jax.data.readers import DataError
from linkbert_jax.errors import ConfigError
from linkbert_jax.data.samples import minilm_dir

N_DOCS = 60
SMALL = ["--config", "cpu_small", "--build_args", "--max_seq_length 40 --eval_fraction 0.4",
         "--pretrain", "num_train_steps=3", "--pretrain", "seq_length=40",
         "--pretrain", "global_batch_size=8", "--pretrain", "eval_batch_size=8",
         "--pretrain", "eval_max_batches=0",
         "--pretrain", "masking.max_predictions=6", "--pretrain", "checkpoint_every_steps=3",
         "--finetune", "num_train_epochs=1", "--finetune", "batch_size=8",
         "--finetune", "max_seq_length=64"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablate")
    random_link_corpus(tmp / "corpus.jsonl", N_DOCS, min_links=1)
    return tmp


def ablate(corpus, workdir, *extra):
    return ablate_cli.main(["--workdir", str(workdir), "--input", str(corpus / "corpus.jsonl"),
                            "--format", "jsonl", "--tokenizer", minilm_dir(), "--seeds", "1",
                            *SMALL, *extra])


@pytest.fixture(scope="module")
def finished(corpus):
    rc = ablate(corpus, corpus / "w", "--arms", "linkbert,random")
    assert rc == 0
    return corpus / "w"


def test_every_arm_is_scored_on_the_common_split(finished):
    summary = json.loads((finished / "summary.json").read_text())
    runs = summary["runs"]
    assert set(runs) == {"linkbert", "random"}
    assert "every arm on the common eval split" in (finished / "summary.md").read_text()
    for arm in runs:
        row = runs[arm][0]
        assert all(row[k] is not None for k in ("mlm", "drp_linked", "task_full", "task_few"))
    common = json.loads((finished / "data" / "hyperlinks" / "manifest.json").read_text())
    own = json.loads((finished / "data" / arms.build_key("random") / "manifest.json")
                     .read_text())
    evals = [json.loads((finished / "runs" / a / "seed_1" / report.HELDOUT).read_text())
             for a in ("linkbert", "random")]
    # the random arm trained on its own pairs but was scored on the hyperlinks build's
    assert own["options"]["link_source"] == "random"
    assert evals[0]["examples"] == evals[1]["examples"] == common["num_examples"]["eval"]
    for r in report.RELATIONS:
        assert evals[0][f"drp_weight_{r}"] == evals[1][f"drp_weight_{r}"] > 0


def test_a_rerun_skips_every_stage(corpus, finished, capsys):
    before = json.loads((finished / "summary.json").read_text())["runs"]
    capsys.readouterr()
    assert ablate(corpus, finished, "--arms", "linkbert,random") == 0
    out = capsys.readouterr().out
    stage_lines = [l for l in out.splitlines() if l.startswith("[ablate]")]
    assert len(stage_lines) == 6 and all(l.endswith("skipped") for l in stage_lines)
    assert json.loads((finished / "summary.json").read_text())["runs"] == before


def test_k_zero_is_one_line(corpus, tmp_path, capsys):
    rc = ablate(corpus, tmp_path, "--arms", "linkbert", "--build_args", "--link_k 0")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--link_k must be at least 1" in err


def test_an_arm_dir_holding_other_data_is_one_line(corpus, finished, tmp_path, capsys):
    shutil.copytree(finished / "data" / "hyperlinks",
                    tmp_path / "data" / arms.build_key("tfidf"))
    shutil.copytree(finished / "data" / "hyperlinks", tmp_path / "data" / "hyperlinks")
    rc = ablate(corpus, tmp_path, "--arms", "tfidf")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "other options" in err


def test_an_arm_config_on_another_arms_data_is_refused(finished, tmp_path):
    config = arms.arm_config("cpu_small", "tfidf", 1, str(finished / "data" / "hyperlinks"),
                             {"seq_length": 40, "global_batch_size": 8})
    with pytest.raises(ConfigError, match="tfidf") as err:
        stages.pretrain_and_eval(config, str(tmp_path / "run"),
                                 str(finished / "data" / "hyperlinks"))
    assert "\n" not in str(err.value)


def test_a_build_with_another_split_is_refused(corpus, finished, tmp_path):
    other = tmp_path / "other_seed"
    run_build("--input", corpus / "corpus.jsonl", "--format", "jsonl", "--output_dir", other,
              "--tokenizer", minilm_dir(), "--max_seq_length", 40, "--eval_fraction", 0.4,
              "--seed", 9)
    with pytest.raises(DataError, match="split") as err:
        stages.check_same_split(str(finished / "data" / "hyperlinks"), str(other))
    assert "\n" not in str(err.value)
