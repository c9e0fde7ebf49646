import pytest

from helpers.corpora import run_build
from linkbert_jax.data.samples import minilm_dir, wikipedia_sample


@pytest.fixture(scope="session")
def wiki_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("wiki")
    argv = ["--input", wikipedia_sample(), "--format", "wikipedia", "--output_dir", out,
            "--tokenizer", minilm_dir(), "--num_shards", 2, "--eval_fraction", 0.1,
            "--max_seq_length", 128, "--seed", 3]
    return out, run_build(*argv), argv
