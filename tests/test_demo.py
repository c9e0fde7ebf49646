"""The newcomer's command, shrunk: every stage runs for real (build from the gensim
Wikipedia sample with MiniLM's vocabulary, continue MiniLM as a LinkBERT, export, PyTorch
fill-mask and DRP), then a re-run reuses them."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _demo(workdir):
    cmd = [sys.executable, "-m", "linkbert_jax.demo", "--workdir", str(workdir),
           "--steps", "12", "--batch_size", "8", "--evals", "1"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_demo_end_to_end_then_reuses(tmp_path):
    text = _demo(tmp_path)
    for stage in ("1/4 data", "2/4 train", "3/4 export", "4/4 show", "summary"):
        assert stage in text
    assert "fill-mask" in text and "The capital of France is [MASK]." in text
    assert "verified:" in text  # the export matched transformers
    for rel in ("contiguous", "random", "linked"):
        assert f"gold {rel}" in text
    assert "DRP accuracy" in text and "106 Wikipedia articles" in text
    png = tmp_path / "train" / "training_curves.png"
    assert png.exists() and png.stat().st_size > 10_000
    assert (tmp_path / "export" / "model.safetensors").exists()

    again = _demo(tmp_path)
    assert "reusing" in again.split("2/4 train")[0]  # the builder's "already built"
    assert "training already finished" in again
    assert "already holds the export of step 12" in again
