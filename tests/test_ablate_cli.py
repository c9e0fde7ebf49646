"""python -m linkbert_jax.ablate: the arms' commands (dry run), their generated configs,
and the mean ± sd table from finished runs."""
import json
import statistics

import pytest

from linkbert_jax import config_defaults
from linkbert_jax.ablate import __main__ as ablate_cli
from linkbert_jax.ablate import arms, report


def dry_run(tmp_path, capsys, *extra):
    rc = ablate_cli.main(["--workdir", str(tmp_path), "--dry_run", "--input", "CORPUS",
                          "--tokenizer", "TOK", *extra])
    out = capsys.readouterr()
    return rc, [line[2:].split() for line in out.out.splitlines() if line.startswith("$ ")], \
        out.err


def test_dry_run_builds_once_per_link_options_and_runs_every_arm_and_seed(tmp_path, capsys):
    rc, cmds, _ = dry_run(tmp_path, capsys, "--seeds", "1,2,3")
    assert rc == 0
    builds = [c for c in cmds if "linkbert_jax.data.build" in c]
    outs = [c[c.index("--output_dir") + 1] for c in builds]
    assert len(outs) == len(set(outs)) == 4  # linkbert and no_drp share hyperlinks data
    for arm in arms.ARMS.values():
        flags = {f"--{k}={v}" for k, v in arm.build.items()}
        assert any(flags <= set(c) for c in builds), arm.name
    pretrain = [c for c in cmds if "linkbert_jax.main" in c]
    finetune = [c for c in cmds if "linkbert_jax.finetune" in c]
    assert len(pretrain) == 5 * 3 and len(finetune) == 2 * 5 * 3
    few = [c for c in finetune if c[c.index("--train_file") + 1].endswith("few_shot.jsonl")]
    assert len(few) == 15
    assert all(c[c.index("--validation_file") + 1].endswith("task/dev.jsonl") and
               c[c.index("--test_file") + 1].endswith("task/test.jsonl") for c in finetune)
    task = next(c for c in cmds if "linkbert_jax.ablate.linktask" in c)
    assert task[task.index("--test_fraction") + 1] == "0.2"


@pytest.mark.parametrize("argv,says", [
    (["--arms", "linkbert,bogus"], "unknown arm bogus"),
    (["--seeds", "1,1"], "distinct"),
    (["--seeds", "a"], "integers"),
    (["--pretrain", "noequals"], "KEY=VALUE"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, argv, says):
    rc, _, err = dry_run(tmp_path, capsys, *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and says in err


def test_generated_config_sets_the_arm(tmp_path):
    text = arms.run_config("cpu_small", arms.ARMS["no_drp"], 3, "/data/x",
                           {"num_train_steps": 50, "masking.max_predictions": 7})
    path = tmp_path / "config.py"
    path.write_text(text)
    c = config_defaults.load_config_file(str(path))
    assert (c.seed, c.data_dir, c.objective, c.num_train_steps) == (3, "/data/x", "mlm", 50)
    assert dict(c.data_options) == {"link_source": "hyperlinks",
                                    "link_sampling": "inverse_in_degree"}
    assert c.masking.max_predictions == 7
    assert c.model.hidden_size == config_defaults.load_config_file("cpu_small").model.hidden_size


def _fake_run(root, arm, seed, mlm, drp, full, few, dev=0.99):
    run = root / "runs" / arm / f"seed_{seed}"
    run.mkdir(parents=True)
    rows = [{"step": 10, "loss": 1.0}, {"step": 20, "eval_mlm_accuracy": mlm,
                                        **{f"eval_drp_accuracy_{r}": drp for r in
                                           report.RELATIONS}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for kind, acc in (("full", full), ("few_shot", few)):
        d = root / "ft" / arm / f"seed_{seed}" / kind / f"seed_{seed}"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"dev": {"accuracy": dev},
                                                    "test": {"accuracy": acc}}))
    ft = root / "ft" / arm / f"seed_{seed}"
    return report.row(str(run), str(ft / "full"), str(ft / "few_shot"), seed,
                      arms.ARMS[arm].objective)


def test_table_is_mean_and_sample_sd_over_seeds(tmp_path):
    full = {1: 0.5, 2: 0.6, 3: 0.8}
    rows = {"linkbert": [_fake_run(tmp_path, "linkbert", s, 0.3 + s / 100, 0.5, full[s], 0.4)
                         for s in (1, 2, 3)],
            "no_drp": [_fake_run(tmp_path, "no_drp", s, 0.3, 0.9, 0.5, 0.4) for s in (1, 2, 3)]}
    text = report.write_summary(str(tmp_path), rows, [1, 2, 3], 125.0)
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]
    mean, sd, n = summary["linkbert"]["task_full"]
    assert n == 3 and mean == pytest.approx(statistics.mean(full.values()))
    assert sd == pytest.approx(statistics.stdev(full.values()))
    assert summary["no_drp"]["drp_linked"] is None  # MLM only: no DRP
    line = next(l for l in text.splitlines() if l.startswith("| linkbert"))
    assert f"{statistics.mean(full.values()):.3f} ± {statistics.stdev(full.values()):.3f}" \
        in line
    assert "n/a" in next(l for l in text.splitlines() if l.startswith("| no_drp"))
    assert "wall time 2.1 min" in text


def test_table_notes_the_task_baseline(tmp_path):
    (tmp_path / "task.json").write_text(json.dumps(
        {"tfidf_baseline_accuracy": {"dev": 0.5, "test": 0.46}}))
    note = ablate_cli._baseline_note(str(tmp_path))
    assert note.endswith("dev 0.500, test 0.460")
    text = report.write_summary(str(tmp_path), {"linkbert": [{"seed": 1}]}, [1], 1.0, note)
    assert text.splitlines()[-1] == note
