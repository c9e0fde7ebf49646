"""The step recipe: a config on a set of devices -> its compiled train and eval steps.

``build(config, manifest=None, mesh=None)`` runs, once each: the config's counts, the
model config (the data's vocabulary when ``vocab_size`` is 0), the mesh, the mesh checks
(batch and process divisibility, sequence length), the optimizer's state layout, the
abstract sharded train state and the analytic FLOPs. The :class:`Recipe` it returns
compiles the steps and gives their abstract inputs. The trainer, the ahead-of-time
analysis (``linkbert_jax.aot``), the held-out eval of ``linkbert_jax.ablate`` and the
benchmarks ``bench/compile.py``, ``bench/train_step.py`` and ``bench/checkpoint_verify.py``
all build their steps here. Checks of the data itself (manifest, files, initial weights)
are the trainer's (``linkbert_jax.pretrain.input_checks``): a compile for a target has
no data.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax

from linkbert_jax import objectives, optimizer, sharding
from linkbert_jax.data import arm_checks
from linkbert_jax.errors import ConfigError
from linkbert_jax.infra import metrics_log, step_costs
from linkbert_jax.model import ModelConfig
from linkbert_jax.pretrain import steps
from linkbert_jax.pretrain.evaluation import eval_batch_size

# Counts that must be >= 1 and >= 0 (a negative step count used to run nothing, exit 0).
_AT_LEAST_ONE = ("num_train_steps", "checkpoint_every_steps", "log_every_steps",
                 "microbatches", "seq_length", "keep_checkpoints")
_AT_LEAST_ZERO = ("warmup_steps", "warmup_fraction", "eval_every_steps", "eval_batch_size",
                  "eval_max_batches")


def check_counts(config) -> None:
    for names, low in ((_AT_LEAST_ONE, 1), (_AT_LEAST_ZERO, 0)):
        for name in names:
            value = config.get(name)
            if value is not None and value < low:
                raise ConfigError(f"{name} is {value}: it must be at least {low} "
                                  f"(--config.{name})")


def model_config_from(config, manifest: Optional[dict] = None) -> ModelConfig:
    """``config.model`` as a ModelConfig; ``vocab_size <= 0`` means the data's vocabulary,
    the relation head's size is the objective's."""
    fields = dict(config.model)
    fields["num_relations"] = objectives.num_relations(arm_checks.objective(config))
    if fields.get("vocab_size", 0) <= 0:
        if not manifest or not manifest.get("vocab_size"):
            raise ConfigError("config.model.vocab_size is 0 (= the data's) but the data "
                              "manifest has no vocab_size; set --config.model.vocab_size")
        fields["vocab_size"] = int(manifest["vocab_size"])
    return ModelConfig.from_dict(fields)


def check_mesh(config, model_cfg: ModelConfig, mesh, rules) -> None:
    """What the shapes ask of the mesh and the processes, as one message each."""
    dp, n_proc = sharding.data_parallel_size(mesh, rules), jax.process_count()
    if config.seq_length > model_cfg.max_position_embeddings:
        raise ConfigError(f"seq_length {config.seq_length} > max_position_embeddings "
                          f"{model_cfg.max_position_embeddings}")
    for name, b in (("global_batch_size", config.global_batch_size),
                    ("eval_batch_size", eval_batch_size(config))):
        unit = dp * (config.microbatches if name == "global_batch_size" else 1)
        if b <= 0 or b % unit:
            what = (f"data-parallel size {dp}" if unit == dp else
                    f"data-parallel size {dp} x microbatches {config.microbatches}")
            raise ConfigError(f"{name} {b} is not divisible by the {what} (mesh "
                              f"{dict(mesh.shape)}); choose a multiple of {unit}")
    if dp % n_proc:
        raise ConfigError(f"the batch is split over {dp} devices, which does not divide "
                          f"over {n_proc} processes; give each process its own batch shard")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A config's train step on a mesh: what it is built from, and its abstract inputs."""
    config: Any
    model_cfg: ModelConfig
    mesh: Any
    rules: tuple
    tx: Any  # the optax optimizer: its state's layout (the step builds its own on the
             # schedule's numbers, steps.with_schedule)
    abstract_state: Any  # TrainState of ShapeDtypeStructs with shardings
    state_shardings: Any  # TrainState of NamedShardings
    flops_per_sequence: float  # useful (analytic) training FLOPs of one sequence

    @property
    def data_sharding(self):
        return sharding.batch_sharding(self.mesh, self.rules)

    @property
    def flops_per_step(self) -> float:
        return self.flops_per_sequence * self.config.global_batch_size

    def compile(self) -> tuple[Callable, Callable]:
        """``(train, evaluate)``: ``steps.compile_steps`` (jitted, traced when called)."""
        return steps.compile_steps(self.model_cfg, self.config, self.mesh, self.rules,
                                   self.state_shardings)

    def abstract_batch(self, batch_size: Optional[int] = None) -> dict:
        """The global train batch (or ``batch_size`` rows, e.g. the eval batch)."""
        c = self.config
        return step_costs.abstract_batch(batch_size or c.global_batch_size, c.seq_length,
                                         int(c.masking.max_predictions), self.data_sharding)

    def abstract_eval_batch(self) -> dict:
        return self.abstract_batch(eval_batch_size(self.config))

    def abstract_key(self) -> jax.ShapeDtypeStruct:
        return step_costs.abstract_key(sharding.replicated(self.mesh))

    def init_state(self, rng) -> steps.TrainState:
        """Parameters and optimizer state drawn from ``rng``, born sharded."""
        return steps.init_state(self.model_cfg, self.config.seq_length, self.tx, rng,
                                self.state_shardings, self.rules)


def build(config, manifest: Optional[dict] = None, *, mesh=None) -> Recipe:
    """The recipe of ``config`` on ``mesh`` (default: ``config.mesh`` over every device);
    ``manifest`` only for a vocabulary taken from the data."""
    check_counts(config)
    model_cfg = model_config_from(config, manifest)
    mesh = sharding.make_mesh(config.mesh) if mesh is None else mesh
    rules = sharding.rules_from_config(config)
    check_mesh(config, model_cfg, mesh, rules)
    tx = optimizer.make_optimizer(config)
    abstract, state_sh = steps.state_shardings(model_cfg, config.seq_length, tx, mesh, rules)
    flops = metrics_log.flops_per_sequence(model_cfg, config.seq_length,
                                           int(config.masking.max_predictions))
    return Recipe(config=config, model_cfg=model_cfg, mesh=mesh, rules=rules,
                  tx=tx,
                  abstract_state=abstract, state_shardings=state_sh,
                  flops_per_sequence=flops)
