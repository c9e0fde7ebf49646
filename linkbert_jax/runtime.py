"""Process set-up shared by the entry points (pretraining, fine-tuning): logging and
multi-host initialisation. Nothing here runs at import."""
from __future__ import annotations

import logging


def define_distributed_flags():
    """The absl flags of a multi-host launch, for an entry point to define once:
    ``(coordinator_address, num_processes, process_id)`` flag holders."""
    from absl import flags
    return (flags.DEFINE_string("coordinator_address", None,
                                "host:port of process 0 (multi-process without a cluster "
                                "environment JAX detects)"),
            flags.DEFINE_integer("num_processes", None, "Number of processes."),
            flags.DEFINE_integer("process_id", None, "This process's index."))


def init_distributed(coordinator: str | None, num_processes: int | None,
                     process_id: int | None) -> None:
    """Explicit flags, else auto-detection on TPU pods / GPU clusters, else one process."""
    import jax
    if coordinator:
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=num_processes, process_id=process_id)
        return
    try:
        jax.distributed.initialize()
    except (ValueError, RuntimeError):  # no cluster environment: a single process
        pass


def setup_logging(*quiet: str) -> None:
    """Our progress lines on stderr; absl/XLA chatter (and the ``quiet`` loggers) only at
    WARNING and above."""
    logger = logging.getLogger("linkbert_jax")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
    for name in ("absl", "jax._src.xla_bridge") + quiet:  # xla_bridge: "no TPU backend"
        logging.getLogger(name).setLevel(logging.WARNING)
