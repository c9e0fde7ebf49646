"""Training configs shipped with the package: ``--config NAME`` (``base``, ``tiny``, ...)
or a path; ``linkbert_jax.config_defaults.config_file`` resolves either."""
