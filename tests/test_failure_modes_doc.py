"""Issue 11, acceptance 3: every row of docs/failure_modes.md names a test that exists."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _rows() -> list[str]:
    with open(os.path.join(ROOT, "docs", "failure_modes.md"), encoding="utf-8") as f:
        lines = [line for line in f if line.startswith("| ")]
    return [line for line in lines if not line.startswith("| fault ")]


def test_every_failure_mode_names_an_existing_test():
    rows = _rows()
    assert len(rows) >= 30
    for row in rows:
        refs = TEST_REF.findall(row)
        assert len(refs) == 1, f"a row without exactly one test: {row}"
        path, name = refs[0]
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            assert re.search(rf"^def {name}\(", f.read(), re.M), f"{path}::{name} not found"
