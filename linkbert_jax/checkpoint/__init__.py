"""Checkpoints: orbax save/restore with checksums and integrity checks
(``checkpoints``, ``checksums``, ``tree_diff``), what orbax's failures become
(``orbax_faults``), and the config each step was trained with (``step_config``)."""
