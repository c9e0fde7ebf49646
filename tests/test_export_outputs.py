"""Issue 22, rows 1, 8 and 13: an export never replaces a directory it did not write
(rc 2, one line, every file as it was), ``--overwrite`` replaces only an earlier export;
saved configs hold absolute paths, a missing tokenizer is an error that names what is
missing (or ``--no_tokenizer`` says so), and the files follow the umask."""
import json
import os
import shutil
import stat

import pytest

from helpers.exports import make_workdir, run_export
from helpers.finetune_data import tiny_bert
from helpers.outcomes import tree_hashes
from helpers.synthetic import SyntheticSource
from helpers.training import small_config
from linkbert_jax.hf import export_dir
from linkbert_jax.pretrain import trainer
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import export as ft_export
from linkbert_jax.finetune import pretrained
from linkbert_jax.data.samples import minilm_dir


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("wd") / "wd")
    make_workdir(wd, init_from_hf=minilm_dir())
    return wd


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """A user's Hugging Face model directory (a random tiny BERT with MiniLM's tokenizer):
    every name in it is one an export also writes."""
    return tiny_bert(tmp_path_factory.mktemp("user") / "bert")


def _user_dir(kind: str, hf_model: str, dest) -> str:
    if kind == "lone_safetensors":
        os.makedirs(dest)
        shutil.copy(os.path.join(hf_model, "model.safetensors"), dest)
    else:
        shutil.copytree(hf_model, dest)
    if kind == "finetuned":  # what fine-tuning wrote before its directories were marked
        with open(os.path.join(dest, "config.json")) as f:
            cfg = json.load(f)
        cfg.update(architectures=["BertForSequenceClassification"],
                   id2label={"0": "no", "1": "yes"}, label2id={"no": 0, "yes": 1})
        with open(os.path.join(dest, "config.json"), "w") as f:
            json.dump(cfg, f)
    return str(dest)


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("kind", ["hf_model", "lone_safetensors", "finetuned"])
def test_export_never_replaces_a_model_dir_it_did_not_write(workdir, hf_model, tmp_path,
                                                            capsys, kind, overwrite):
    out = _user_dir(kind, hf_model, tmp_path / "mine")
    before = tree_hashes(out)
    rc, _, err = run_export(capsys, "--workdir", workdir, "--output_dir", out, "--no_verify",
                            *(["--overwrite"] if overwrite else []))
    assert rc == 2
    assert "is not empty and was not written by an export" in one_error_line(err)
    assert out in err and "model.safetensors" in err
    assert tree_hashes(out) == before
    assert sorted(os.listdir(tmp_path)) == ["mine"]  # no temporary sibling left


def test_overwrite_replaces_only_an_unchanged_earlier_export(workdir, tmp_path, capsys):
    out = str(tmp_path / "hf")
    base = ["--workdir", workdir, "--output_dir", out, "--no_verify"]
    rc, _, err = run_export(capsys, *base, "--step", "5")
    assert rc == 0, err
    with open(os.path.join(out, export_dir.MARKER_NAME)) as f:
        marker = json.load(f)
    assert marker["written_by"] == "linkbert_jax.hf.export" and marker["step"] == 5
    assert set(marker["files"]) == set(os.listdir(out)) - {export_dir.MARKER_NAME}
    step5 = tree_hashes(out)

    rc, _, err = run_export(capsys, *base)  # without --overwrite: refused
    assert rc == 2 and "holds an earlier export (step 5 of " in one_error_line(err)
    assert "pass --overwrite" in err and tree_hashes(out) == step5

    # An export a user has added a file to, or changed a file of, is theirs now.
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("my notes\n")
    rc, _, err = run_export(capsys, *base, "--overwrite")
    assert rc == 2 and "'notes.txt', which that export did not write" in one_error_line(err)
    os.remove(os.path.join(out, "notes.txt"))
    with open(os.path.join(out, "config.json"), "a") as f:
        f.write("\n")
    edited = tree_hashes(out)
    rc, _, err = run_export(capsys, *base, "--overwrite")
    assert rc == 2 and "'config.json', which that export did not write (or which " \
        "changed since)" in one_error_line(err)
    assert tree_hashes(out) == edited

    shutil.rmtree(out)  # an unchanged earlier export is replaced with --overwrite
    assert run_export(capsys, *base, "--step", "5")[0] == 0
    rc, text, err = run_export(capsys, *base, "--overwrite")
    assert rc == 0 and "step 9" in text, err
    with open(os.path.join(out, export_dir.MARKER_NAME)) as f:
        assert json.load(f)["step"] == 9
    assert sorted(os.listdir(tmp_path)) == ["hf"]


def test_an_export_never_replaces_the_other_kind(workdir, hf_model, tmp_path, capsys):
    """A fine-tuned model (marked by fine-tuning) is not the pretraining export's to
    replace, even with --overwrite; a pretraining export is not fine-tuning's."""
    finetuned = str(tmp_path / "finetuned")
    with export_dir.staged(finetuned, {"written_by": export_dir.FINETUNING},
                           overwrite=False) as tmp:
        shutil.copytree(hf_model, tmp, dirs_exist_ok=True)
    before = tree_hashes(finetuned)
    rc, _, err = run_export(capsys, "--workdir", workdir, "--output_dir", finetuned,
                            "--no_verify", "--overwrite")
    assert rc == 2 and tree_hashes(finetuned) == before
    assert "holds a model that linkbert_jax.finetune wrote" in one_error_line(err)

    pretraining = tmp_path / "ft"
    rc, _, err = run_export(capsys, "--workdir", workdir, "--output_dir",
                            pretraining / "model", "--no_verify")
    assert rc == 0, err
    before = tree_hashes(pretraining)
    with pytest.raises(ConfigError, match="holds a model that linkbert_jax.hf.export wrote"):
        ft_export.check_model_dirs(str(pretraining), None, hf_model, None)
    assert tree_hashes(pretraining) == before


def test_finetune_refuses_a_model_dir_it_did_not_write_before_training(hf_model, tmp_path):
    work = tmp_path / "ft"
    _user_dir("hf_model", hf_model, work / "model")
    before = tree_hashes(work)
    with pytest.raises(ConfigError, match="the fine-tuned model's directory .* is not empty "
                       "and was not written by an export .* choose another --workdir"):
        ft_export.check_model_dirs(str(work), None, hf_model, None)
    with pytest.raises(ConfigError, match="seed_3/model"):  # with --seeds, each seed's
        _user_dir("lone_safetensors", hf_model, work / "seed_3" / "model")
        ft_export.check_model_dirs(str(work), [1, 3], hf_model, None)
    # --init inside the directory the run would replace with its model
    ft_export.check_model_dirs(str(tmp_path / "new"), None, hf_model, None)
    with pytest.raises(ConfigError, match="--init .* is inside .*, which this run replaces"):
        ft_export.check_model_dirs(str(tmp_path / "w2"), None, str(tmp_path / "w2/model"),
                                   None)
    with pytest.raises(ConfigError, match="--tokenizer .* is inside .*, which this run "):
        ft_export.check_model_dirs(str(tmp_path / "w2"), None, hf_model,
                                   str(tmp_path / "w2/model/tok"))
    assert {k: v for k, v in tree_hashes(work).items() if k.startswith("model")} == before


def _modes(path) -> set:
    out = {stat.S_IMODE(os.stat(path).st_mode)}
    for d, dirs, names in os.walk(path):
        out |= {("f", stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode)) for n in names}
        out |= {("d", stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode)) for n in dirs}
    return out


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755),
                                                      (0o027, 0o640, 0o750),
                                                      (0o002, 0o664, 0o775)])
def test_export_files_follow_the_umask(workdir, tmp_path, capsys, umask, file_mode,
                                       dir_mode):
    """safetensors writes 0600 through a temporary file of its own; the export's files
    (weights, config, tokenizer, card, marker) get what the umask gives, as any file."""
    out = str(tmp_path / "hf")
    old = os.umask(umask)
    try:
        rc, _, err = run_export(capsys, "--workdir", workdir, "--output_dir", out,
                                "--no_verify", "--pytorch_bin")
    finally:
        os.umask(old)
    assert rc == 0, err
    assert "model.safetensors" in os.listdir(out) and "tokenizer.json" in os.listdir(out)
    assert _modes(out) == {dir_mode, ("f", file_mode)}


def test_relative_config_paths_are_saved_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = small_config(data_dir="data/mine", init_from_hf=os.path.relpath(minilm_dir()))
    c.model.update(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                   num_attention_heads=12, intermediate_size=1536)
    trainer.setup_run(c, "wd", SyntheticSource(vocab_size=30522, max_seq_length=32))
    with open(tmp_path / "wd" / "config.json") as f:
        saved = json.load(f)
    assert saved["data_dir"] == str(tmp_path / "data" / "mine")
    assert saved["init_from_hf"] == os.path.abspath(minilm_dir())


def test_training_refuses_a_workdir_whose_config_it_did_not_write(hf_model, tmp_path):
    wd = _user_dir("hf_model", hf_model, tmp_path / "wd")
    before = tree_hashes(wd)
    with pytest.raises(ConfigError, match="its config.json was not written by training "
                       r"\(a Hugging Face model's config\)"):
        trainer.setup_run(small_config(), wd, SyntheticSource(vocab_size=2048))
    assert tree_hashes(wd) == before


def test_export_without_a_tokenizer_fails_unless_no_tokenizer(tmp_path, capsys,
                                                              monkeypatch):
    """A workdir trained with a relative data_dir, exported from another directory (its
    config.json written before paths were made absolute): the tokenizer is not found."""
    wd = str(tmp_path / "wd")
    make_workdir(wd, steps=(3,), data_dir="data/mine")
    monkeypatch.chdir(tmp_path / "wd")
    out = str(tmp_path / "hf")
    rc, _, err = run_export(capsys, "--workdir", wd, "--output_dir", out, "--no_verify")
    assert rc == 2 and not os.path.exists(out)
    one_error_line(err)
    assert "no tokenizer for the export of" in err
    assert ("the training data's tokenizer (data_dir 'data/mine', relative to where "
            f"training ran, here {tmp_path}/wd/data/mine): no tokenizer.json in "
            "data/mine/tokenizer") in err
    assert "pass --tokenizer DIR, or --no_tokenizer" in err

    rc, text, err = run_export(capsys, "--workdir", wd, "--output_dir", out, "--no_verify",
                               "--tokenizer", tmp_path)
    assert rc == 2 and not os.path.exists(out)
    assert f"--tokenizer {tmp_path}: no tokenizer.json there" in one_error_line(err)

    rc, text, err = run_export(capsys, "--workdir", wd, "--output_dir", out, "--no_verify",
                               "--no_tokenizer")
    assert rc == 0, err
    assert "tokenizer: none (--no_tokenizer): the export has no tokenizer" in text
    assert not [n for n in os.listdir(out) if n.startswith(("tokenizer", "vocab"))]
    with open(os.path.join(out, export_dir.MARKER_NAME)) as f:
        assert json.load(f)["tokenizer"] is None


def test_finetune_init_messages_name_what_is_wrong(tmp_path):
    """``--tokenizer`` given but not a tokenizer: the message is about ``--tokenizer``,
    never "pass --tokenizer"; none given and none found: each place looked at."""
    wd = str(tmp_path / "wd")
    make_workdir(wd, steps=(3,), data_dir=str(tmp_path / "gone"), metrics=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError) as e:
        pretrained.load(wd, tokenizer=str(empty))
    assert str(e.value).startswith(f"--tokenizer {empty}: no tokenizer.json there")
    assert "pass --tokenizer" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        pretrained.load(wd)
    assert str(e.value) == (
        f"--init {wd}: no tokenizer: the training data's tokenizer (data_dir "
        f"'{tmp_path}/gone'): no tokenizer.json in {tmp_path}/gone/tokenizer; pass "
        "--tokenizer DIR with the vocabulary the model was trained with")
    assert pretrained.load(wd, tokenizer=minilm_dir()).tokenizer_dir == minilm_dir()
