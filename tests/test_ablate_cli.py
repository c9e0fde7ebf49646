"""python -m linkbert_jax.ablate: the plan (dry run), the arms from configs/ablations.py,
bad input as one line, and the mean ± sd table from finished runs."""
import json
import statistics

import pytest

from linkbert_jax.ablate import __main__ as ablate_cli
from linkbert_jax.ablate import arms, report
from linkbert_jax.configs import ablations


def dry_run(tmp_path, capsys, *extra):
    rc = ablate_cli.main(["--workdir", str(tmp_path), "--dry_run", "--input", "CORPUS",
                          "--tokenizer", "TOK", *extra])
    out = capsys.readouterr()
    cmds = [line[2:].split() for line in out.out.splitlines() if line.startswith("$ ")]
    stages = [line for line in out.out.splitlines() if line.startswith("[ablate]")]
    return rc, cmds, stages, out.err


def test_dry_run_builds_once_per_builder_flags_and_plans_every_stage(tmp_path, capsys):
    rc, cmds, stages, _ = dry_run(tmp_path, capsys, "--seeds", "1,2,3")
    assert rc == 0
    builds = [c for c in cmds if "linkbert_jax.data.build" in c]
    outs = [c[c.index("--output_dir") + 1] for c in builds]
    assert len(outs) == len(set(outs)) == 4  # linkbert and no_drp share hyperlinks data
    assert outs[0].endswith("data/hyperlinks")  # the common build comes first
    for arm in arms.DEFAULT_ARMS:  # each arm's flags are the ones configs/ablations.py owns
        flags = ablations.build_flags(arm)
        assert any(set(flags) <= set(c) and c[c.index("--output_dir") + 1].endswith(
            arms.build_key(arm)) for c in builds), arm
    task = next(c for c in cmds if "linkbert_jax.ablate.linktask" in c)
    assert task[task.index("--build") + 1].endswith("data/hyperlinks")
    assert task[task.index("--test_fraction") + 1] == "0.2"
    assert len(stages) == 3 * 5 * 3
    assert sum("fine-tune (few_shot)" in s for s in stages) == 15
    assert stages[1].startswith("[ablate] 2/45 linkbert seed 1: fine-tune (full)")
    assert "no_drp seed 1" in stages[14] and "linkbert seed 2" in stages[15]  # seed-major


def test_arms_have_one_owner():
    assert set(arms.DEFAULT_ARMS) <= set(ablations.ARMS) == set(arms.ARMS)
    assert arms.build_key("linkbert") == arms.build_key("no_drp") == "hyperlinks"
    keys = {arms.build_key(a) for a in arms.DEFAULT_ARMS}
    assert len(keys) == 4
    c = arms.arm_config("cpu_small", "no_drp", 3, "/data/x",
                        {"num_train_steps": 50, "masking.max_predictions": 7})
    assert (c.seed, c.data_dir, c.objective, c.num_train_steps) == (3, "/data/x", "mlm", 50)
    set_options = lambda cfg: {k: v for k, v in cfg.data_options.items() if v is not None}
    assert set_options(c) == ablations.data_options("no_drp")
    assert c.masking.max_predictions == 7 and (c.eval_every_steps, c.eval_at_end) == (0, False)
    t = arms.arm_config("cpu_small", "tfidf", 1, "/d", {})
    assert (t.objective, set_options(t)) == ("drp", ablations.data_options("tfidf"))
    assert t.model.hidden_size == c.model.hidden_size  # the arms differ only by the arm


@pytest.mark.parametrize("argv,says", [
    (["--arms", "linkbert,bogus"], "unknown arm bogus"),
    (["--arms", "linkbert,linkbert"], "twice"),
    (["--seeds", "1,1"], "distinct"),
    (["--seeds", "a"], "integers"),
    (["--pretrain", "noequals"], "KEY=VALUE"),
    (["--finetune", "=3"], "KEY=VALUE"),
    (["--pretrain", "num_train_stpes=5"], "no config field 'num_train_stpes'"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, argv, says):
    rc, _, _, err = dry_run(tmp_path, capsys, *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and says in err


def _fake_run(root, arm, seed, mlm, drp, full, few, dev=0.99):
    run = root / "runs" / arm / f"seed_{seed}"
    run.mkdir(parents=True)
    (run / report.HELDOUT).write_text(json.dumps(
        {"mlm_accuracy": mlm, **{f"drp_accuracy_{r}": drp for r in report.RELATIONS}}))
    for kind, acc in (("full", full), ("few_shot", few)):
        d = root / "ft" / arm / f"seed_{seed}" / kind / f"seed_{seed}"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"dev": {"accuracy": dev},
                                                    "test": {"accuracy": acc}}))
    ft = root / "ft" / arm / f"seed_{seed}"
    return report.row(str(run), str(ft / "full"), str(ft / "few_shot"), seed,
                      ablations.arm_spec(arm)[1])


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


def test_minilm_is_continued_by_default_and_scratch_on_request(tmp_path):
    from linkbert_jax.data.samples import minilm_dir
    parse = lambda *a: ablate_cli.make_parser().parse_args(["--workdir", str(tmp_path), *a])
    assert ablate_cli.pretrain_overrides(parse())["init_from_hf"] == minilm_dir()
    assert "init_from_hf" not in ablate_cli.pretrain_overrides(parse("--config", "cpu_small"))
    assert ablate_cli.pretrain_overrides(parse("--init_from_hf", ""))["init_from_hf"] == ""
    assert ablate_cli.pretrain_overrides(parse("--pretrain", "init_from_hf=/m")) == \
        {"init_from_hf": "/m"}
