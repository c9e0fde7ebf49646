"""Errors the entry point reports as one clear line (no traceback)."""


class ConfigError(ValueError):
    """A configuration that cannot run: wrong sizes, missing data, too few devices."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss; the last good checkpoint is kept."""


class ConversionError(ValueError):
    """Bad input for a Hugging Face conversion or export; the message names the file/key."""


class CorruptDataError(ValueError):
    """A data file is missing, truncated or corrupt; the message names the file."""
