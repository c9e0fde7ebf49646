"""Initialisation from a Hugging Face BERT directory (``config.init_from_hf``), with the
real MiniLM-L6-H384 checkpoint the conversion tests use."""
import jax
import numpy as np
import pytest

from helpers.synthetic import SyntheticSource
from helpers.training import small_config
from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.hf import convert
from linkbert_jax.pretrain import trainer
from linkbert_jax.errors import ConfigError
from linkbert_jax.data.samples import minilm_dir


def _config(**model):
    c = small_config(init_from_hf=minilm_dir())
    c.model.update(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                   num_attention_heads=12, intermediate_size=1536)
    c.model.update(model)
    return c


def test_state_starts_from_the_hf_weights(tmp_path):
    c = _config()
    source = SyntheticSource(vocab_size=30522, max_seq_length=32)
    setup = trainer.setup_run(c, str(tmp_path), source)
    mgr = checkpoints.manager(str(tmp_path), async_save=False)
    state, meta = trainer.restore_or_init(c, mgr, setup)
    mgr.close()
    assert meta is None and int(state.step) == 0
    hf = convert.load_hf(minilm_dir()).params
    for path in (("encoder", "layer_5", "attention", "query", "kernel"),
                 ("embeddings", "word_embeddings", "embedding"), ("pooler", "kernel")):
        a, b = state.params, hf
        for k in path:
            a, b = a[k], b[k]
        np.testing.assert_array_equal(np.asarray(jax.device_get(a)), np.asarray(b))


def test_hf_architecture_mismatch_is_a_config_error(tmp_path):
    c = _config(num_hidden_layers=2)
    with pytest.raises(ConfigError, match="num_hidden_layers 6 \\(HF\\) vs 2"):
        trainer.train_and_evaluate(c, str(tmp_path), SyntheticSource(vocab_size=30522))
