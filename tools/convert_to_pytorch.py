#!/usr/bin/env python
"""Export a linkbert-jax training workdir as a Hugging Face BERT directory.

A thin wrapper kept for the documented command; the logic is ``linkbert_jax.hf.export``
(``python -m linkbert_jax.hf.export --help``)::

    python tools/convert_to_pytorch.py export --workdir WORKDIR --output_dir HF_DIR ...
"""
import sys

from linkbert_jax.hf.export import main

if __name__ == "__main__":
    sys.exit(main())
