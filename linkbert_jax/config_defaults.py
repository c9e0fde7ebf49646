"""Defaults shared by every config file (one place; configs only state differences), and
the lookup of config files.

``get_config(arch, **overrides)`` returns the full ``ml_collections.ConfigDict`` with
every key the trainer reads. Durations are in steps; ``warmup_fraction > 0`` means a
fraction of ``num_train_steps`` (resolved by ``linkbert_jax.optimizer.warmup_steps``).

The configs ship inside the package (``linkbert_jax/configs/NAME.py``), so an installed
package needs no checkout: ``--config`` takes a path or a packaged name (``config_file``).
"""
from __future__ import annotations

import importlib.util
import os

import ml_collections
from ml_collections.config_dict import placeholder

from linkbert_jax.data import arm_checks
from linkbert_jax.architectures import ARCHITECTURES
from linkbert_jax.errors import ConfigError
from linkbert_jax.model import ModelConfig

# Logical axis -> mesh axes. Order matters (first rule whose mesh axes are free wins).
# Batch over data and fsdp; parameters' embed axis over fsdp (ZeRO-3 style); the wide
# axes over tensor (Megatron style); small axes replicated.
LOGICAL_AXIS_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("vocab", "tensor"),
    ("kv", None),
    ("length", None),
    ("embed_out", None),
    ("layers", None),
)


def model_config(arch: str, **overrides) -> ml_collections.ConfigDict:
    """``config.model``: every ``ModelConfig`` field, architecture from ``ARCHITECTURES``,
    but ``num_relations``: the relation head's size is ``config.objective``'s."""
    fields = ModelConfig(**ARCHITECTURES[arch]).to_dict()
    fields.update(overrides)
    ModelConfig(**fields)  # validate early
    fields.pop("num_relations")
    return ml_collections.ConfigDict(fields)


def get_config(arch: str, **overrides) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.arch = arch
    c.model = model_config(arch, dtype="bfloat16")
    c.init_from_hf = ""  # Hugging Face BERT directory to start from ("" = from scratch)
    # The paper's ablations (configs/ablations.py). objective: drp (LinkBERT's 3-way document
    # relation prediction) | nsp (BERT's 2-way next sentence prediction; data built with
    # --relation_probs 1/2,1/2,0) | mlm (MLM only, no relation head).
    c.objective = "drp"
    # Builder options the data must have been built with (checked against the manifest's
    # "options" at start), e.g. --config.data_options.link_source=tfidf; None: any. A
    # config file may name any other builder option too.
    c.data_options = ml_collections.ConfigDict(
        {k: placeholder(type(v)) for k, v in arm_checks.PRE_OPTION_DEFAULTS.items()})

    # Data (TFRecord directory written by the corpus builder).
    c.data_dir = ""
    c.train_split = "train"
    c.eval_split = "eval"
    # Virtual streams the train files are dealt to (docs/training.md, "data stream"); 0 =
    # the process count at the first start. Fixed for a workdir at its first start.
    c.data_streams = 0
    c.seq_length = 512
    c.masking = ml_collections.ConfigDict(dict(
        mask_prob=0.15, max_predictions=80, mask_token_prob=0.8, random_token_prob=0.1))

    # Optimization (the paper: AdamW (0.9, 0.98), wd 0.01, warmup then linear decay).
    c.global_batch_size = 2048
    c.microbatches = 1  # gradient accumulation: global batch split into this many scans
    c.num_train_steps = 40_000
    c.learning_rate = 3e-4
    c.warmup_steps = 5_000
    c.warmup_fraction = 0.0  # > 0: warmup = fraction * num_train_steps (overrides steps)
    c.end_learning_rate = 0.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.98
    c.adam_eps = 1e-6
    c.weight_decay = 0.01  # not on LayerNorm parameters and biases
    c.grad_clip_norm = 1.0  # <= 0: no clipping
    c.drp_weight = 1.0  # loss = MLM + drp_weight * DRP

    # Parallelism: mesh axes (-1 = the remaining devices) and logical rules.
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.logical_axis_rules = LOGICAL_AXIS_RULES

    # Checkpoints, logging, eval.
    c.seed = 0
    c.checkpoint_every_steps = 1_000
    c.keep_checkpoints = 3
    c.async_checkpointing = True
    c.log_every_steps = 50
    c.eval_every_steps = 2_000  # 0: no periodic eval (still at the end if eval_at_end)
    c.eval_at_end = True
    c.eval_batch_size = 0  # global; 0 = global_batch_size
    c.eval_max_batches = 0  # 0 = the whole eval split, each example exactly once
    c.peak_flops_per_device = 0.0  # 0 = look up by device kind (linkbert_jax.infra.metrics_log)

    c.update(overrides)
    return c


CONFIGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def config_file(name_or_path: str) -> str:
    """The file a ``--config`` value names: an existing path as it is, else the packaged
    config of that name: ``base``, ``base.py`` and ``configs/base.py`` all name
    ``linkbert_jax/configs/base.py``. Unknown names come back unchanged (the loader then
    reports the missing file)."""
    if os.path.isfile(name_or_path):
        return name_or_path
    name = name_or_path.removeprefix("configs/")
    packaged = os.path.join(CONFIGS_DIR, name if name.endswith(".py") else name + ".py")
    return packaged if os.path.isfile(packaged) else name_or_path


def with_config_files(argv: list[str], flag: str = "--config") -> list[str]:
    """``argv`` with the value of ``flag`` (``--config X`` or ``--config=X``, an optional
    ``:arg`` suffix kept) resolved by ``config_file``, for absl's config flag."""
    def resolve(value: str) -> str:
        path, colon, arg = value.partition(":")
        return config_file(path) + colon + arg

    out = list(argv)
    for i, a in enumerate(argv):
        for spelling in (flag, flag[1:]):  # absl also takes -config
            if a.startswith(spelling + "="):
                out[i] = spelling + "=" + resolve(a[len(spelling) + 1:])
            elif i and argv[i - 1] == spelling:
                out[i] = resolve(a)
    return out


def load_config_file(path: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
    """``get_config()`` of a config file (a path or a packaged name, see ``config_file``;
    ``NAME:ARG`` calls ``get_config(ARG)``), with ``{"a.b": value}`` overrides applied:
    the config ``--config FILE[:ARG] --config.a.b=value`` gives, in-process."""
    path, colon, arg = path.partition(":")
    path = config_file(path)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"linkbert_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg) if colon else module.get_config()
    return apply_overrides(config, overrides or {}, where=path, copy=False)


def apply_overrides(config, overrides: dict, *, where: str = "config",
                    copy: bool = True) -> ml_collections.ConfigDict:
    """``config`` with ``{"a.b": value}`` set (a copy, unless ``copy=False``), as
    ``--config.a.b=value`` does: a key that is not a field is a ``ConfigError`` naming
    ``where`` (a misspelled override), never a new field."""
    if copy:
        config = ml_collections.ConfigDict(config.to_dict())
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents + [leaf]:
            if not hasattr(node, "keys") or parent not in node:
                raise ConfigError(f"{where}: no config field {key!r} (a misspelled override?)")
            node, last = node[parent], node
        last[leaf] = value
    return config
