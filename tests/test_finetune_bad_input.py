"""Bad fine-tuning input is a one-line error naming the file (and record), exit code 2,
or a counted, warned skip; never a silent wrong metric. And the starting points: a
pretraining workdir (latest checkpoint or --step) as well as an HF directory."""
import logging
import os
import subprocess
import sys

import pytest

from helpers.finetune_data import write_jsonl
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import config as ft_config
from linkbert_jax.finetune import data, pretrained, tasks
from linkbert_jax.data.samples import minilm_dir

PAIR = {"id": "a", "sentence1": "one", "sentence2": "two", "label": "yes"}


@pytest.fixture(scope="module")
def tok():
    return pretrained.load_tokenizer(minilm_dir())


def _load(family, tok, tmp_path, train, dev, **cfg):
    files = {"train": write_jsonl(tmp_path / "train.json", train),
             "validation": write_jsonl(tmp_path / "dev.json", dev)}
    c = ft_config.get_config(family, max_seq_length=32, **cfg)
    return tasks.load(tasks.get_task(family), files, tok, c, str(tmp_path / "cache"))


def _error(family, tok, tmp_path, train, dev, **cfg) -> str:
    with pytest.raises(data.DataError) as err:
        _load(family, tok, tmp_path, train, dev, **cfg)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg, msg
    return msg


def test_file_in_the_wrong_format(tok, tmp_path):
    bad = tmp_path / "dev.json"
    bad.write_text("id,sentence,label\n1,hello,yes\n")
    files = {"train": write_jsonl(tmp_path / "train.json", [PAIR] * 4),
             "validation": str(bad)}
    with pytest.raises(data.DataError, match=r"dev\.json: not JSON lines"):
        tasks.load(tasks.get_task("seqcls"), files, tok, ft_config.get_config("seqcls"),
                   str(tmp_path / "cache"))


def test_label_missing_from_the_training_labels(tok, tmp_path):
    dev = [PAIR, dict(PAIR, label="maybe")]
    msg = _error("seqcls", tok, tmp_path, [PAIR, dict(PAIR, label="no")], dev)
    assert "dev.json: record 2: label 'maybe' is not one of" in msg


def test_empty_split_and_missing_fields(tok, tmp_path):
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(data.DataError, match="empty.json: empty file"):
        data.load_split(str(tmp_path / "empty.json"))
    msg = _error("seqcls", tok, tmp_path, [PAIR], [{"id": "x", "sentence1": "a",
                                                    "sentence2": "b"}])
    assert "dev.json: no field 'label'" in msg
    msg = _error("tokcls", tok, tmp_path, [{"tokens": ["a", "b"], "ner_tags": ["O", "O"]}],
                 [{"tokens": ["a", "b"], "ner_tags": ["O"]}])
    assert "dev.json: record 1: 1 ner_tags for 2 tokens" in msg
    msg = _error("mc", tok, tmp_path, [{"sent1": "a", "sent2": "b", "ending0": "c",
                                        "ending1": "d", "label": 0}],
                 [{"sent1": "a", "sent2": "b", "ending0": "c", "ending1": "d", "label": 2}])
    assert "dev.json: record 1: label 2 is not one of" in msg


def test_answer_span_that_does_not_match_its_context(tok, tmp_path, caplog):
    good = {"id": "g", "question": "who?", "context": "Ada Lovelace wrote notes.",
            "answers": {"answer_start": [0], "text": ["Ada Lovelace"]}}
    off = dict(good, id="b", answers={"answer_start": [3], "text": ["Ada Lovelace"]})
    none = dict(good, id="n", answers={"answer_start": [], "text": []})
    with caplog.at_level(logging.WARNING, logger="linkbert_jax"):
        td = _load("qa", tok, tmp_path, [good, off, good, none], [good], doc_stride=8)
    assert len(td.splits["train"].examples) == 2  # two skipped, counted, named
    assert "2 of 4 records skipped" in caplog.text and "first: record 2" in caplog.text
    msg = _error("qa", tok, tmp_path, [good], [good, none], doc_stride=8)
    assert "dev.json: record 2 has no answer" in msg
    msg = _error("qa", tok, tmp_path, [good], [good])  # doc_stride 128 > a 32-token window
    assert "train.json: record 1: its question of 2 tokens leaves 27 context tokens" in msg


def test_cli_prints_one_line_and_exits_2(tmp_path):
    write_jsonl(tmp_path / "train.json", [PAIR, dict(PAIR, label="no")])
    write_jsonl(tmp_path / "dev.json", [dict(PAIR, label="maybe")])
    env = dict(os.environ, HF_HUB_OFFLINE="1", LINKBERT_HUGEPAGES="0")
    p = subprocess.run(
        [sys.executable, "-m", "linkbert_jax.finetune", "--task", "seqcls", "--init",
         minilm_dir(), "--train_file", str(tmp_path / "train.json"), "--validation_file",
         str(tmp_path / "dev.json"), "--workdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "dev.json: record 1: label 'maybe'" in last, last
    assert "Traceback" not in p.stderr


def test_init_from_a_pretraining_workdir(tmp_path):
    """A workdir's latest checkpoint (or --step), its tokenizer from init_from_hf."""
    import jax
    import numpy as np
    import optax

    from helpers.finetune_data import tiny_bert
    from linkbert_jax.checkpoint import checkpoints
    from linkbert_jax.model import ModelConfig, init_params

    hf = tiny_bert(tmp_path / "hf")
    cfg = ModelConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=64)
    work = str(tmp_path / "work")
    checkpoints.write_config(work, {"model": cfg.to_dict(), "data_dir": "",
                                    "init_from_hf": hf})
    mgr = checkpoints.manager(work, async_save=False)
    saved = {}
    for step in (10, 20):
        params = init_params(cfg, jax.random.key(step))
        checkpoints.save(mgr, step, params, optax.sgd(0.1).init(params),
                         {"step": step, "data_position": step, "rng": [0, 0]})
        saved[step] = params
    mgr.close()
    for step, expect in ((None, 20), (10, 10)):
        pre = pretrained.load(work, step=step)
        assert pre.tokenizer_dir == hf and f"step {expect}" in pre.source
        np.testing.assert_array_equal(pre.params["pooler"]["kernel"],
                                      saved[expect]["pooler"]["kernel"])
        assert set(pre.params) == {"embeddings", "encoder", "pooler"}
    with pytest.raises(ConfigError, match="--step is for a linkbert-jax workdir"):
        pretrained.load(hf, step=3)
