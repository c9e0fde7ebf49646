"""Helpers shared by the tests: an importable package, not a test module.

pytest puts ``tests/`` on ``sys.path`` (``pythonpath = tests`` in pytest.ini), so tests
write ``from helpers.training import small_config``; subprocess drivers run as
``python -m helpers.train_driver`` with ``cwd=helpers.TESTS``. Nothing here or in the
tests touches ``sys.path``: ``linkbert_jax`` is the installed package.
"""
import os

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
