"""linkbert_jax/configs/finetune/*.py: every task row builds a full config, with the
LinkBERT run scripts' values (a few spot checks against the scripts), and documents its
command."""
import importlib

import pytest

from linkbert_jax import config_defaults
from linkbert_jax.finetune.config import FAMILIES


def _module(name):
    module = importlib.import_module(f"linkbert_jax.configs.finetune.{name}")
    with open(module.__file__) as f:
        return module, f.read()


@pytest.mark.parametrize("name", ["blurb", "mrqa", "medqa"])
def test_every_task_row_builds(name):
    module, text = _module(name)
    assert f"python -m linkbert_jax.finetune --config finetune/{name}:" in text
    for size, table in (("", module.BASE), (",large", module.LARGE)):
        for task in table:
            c = module.get_config(task + size)
            assert c.task in FAMILIES and c.learning_rate > 0 and c.batch_size > 0, task
    with pytest.raises(ValueError, match="unknown task"):
        module.get_config("nope")


def test_spot_checks_against_the_run_scripts():
    load = config_defaults.load_config_file
    c = load("finetune/blurb")  # default task: chemprot
    assert (c.task, c.learning_rate, c.num_train_epochs, c.max_seq_length, c.batch_size) \
        == ("seqcls", 3e-5, 10.0, 256, 32)
    m, _ = _module("blurb")
    c = m.get_config("jnlpba,large")
    assert (c.learning_rate, c.warmup_fraction, c.seed, c.adam_b2, c.weight_decay) == \
        (3e-5, 0.5, 3, 0.98, 0.01)
    c = m.get_config("bioasq")
    assert (c.warmup_steps, c.num_train_epochs, c.max_seq_length) == (100, 20.0, 512)
    m, _ = _module("mrqa")
    c = m.get_config("squad")
    assert (c.task, c.learning_rate, c.num_train_epochs, c.batch_size, c.max_seq_length,
            c.doc_stride) == ("qa", 3e-5, 2.0, 12, 384, 128)
    m, _ = _module("medqa")
    c = m.get_config("medqa_usmle,large")
    assert (c.task, c.learning_rate, c.batch_size, c.warmup_steps, c.num_train_epochs) == \
        ("mc", 3e-5, 64, 500, 6.0)
