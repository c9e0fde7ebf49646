"""The I/O facade (``linkbert_jax.data.files``): what is remote, and the one atomic
write every writer of the package goes through."""
from __future__ import annotations

import json
import os

import pytest

from linkbert_jax.data import files


@pytest.mark.parametrize("path, remote", [("gs://b/x", True), ("s3://b/x", True),
                                          ("ram://x", True), ("dir/a://b", False),
                                          ("/tmp/x", False), ("x", False)])
def test_a_path_is_remote_when_a_scheme_starts_it(path, remote):
    assert files.is_remote(path) is remote


def test_atomic_write_replaces_the_file_only_when_the_block_ends(tmp_path):
    path = str(tmp_path / "out.json")
    files.write_json(path, {"a": 1})
    with files.atomic_write(path) as f:
        f.write("partial")
        assert json.load(open(path)) == {"a": 1}  # readers still see the old file
    assert open(path).read() == "partial"
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    path = str(tmp_path / "out.json")
    files.write_json(path, {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_write(path, "wb") as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert json.load(open(path)) == {"a": 1}
    assert (tmp_path / "out.json.tmp").read_bytes() == b"half"  # as a crash leaves it
    files.write_json(path, {"a": 2})  # the next write takes the name over
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_write_json_ends_with_a_newline_and_text_is_utf8(tmp_path):
    files.write_json(str(tmp_path / "a.json"), {"k": "é"}, indent=1, ensure_ascii=False)
    assert (tmp_path / "a.json").read_bytes() == '{\n "k": "é"\n}\n'.encode()
    files.write_text(str(tmp_path / "a.md"), "ü\n")
    assert (tmp_path / "a.md").read_bytes() == "ü\n".encode()
