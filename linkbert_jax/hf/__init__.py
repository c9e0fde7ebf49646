"""Hugging Face: conversion both ways (``convert``, ``param_mapping``, ``hf_files``),
verification against transformers (``hf_torch``), the export command and its directory
(``export``, ``export_dir``, ``model_card``), tokenizers and vocabulary checks."""
