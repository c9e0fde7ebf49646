"""The pair contract has one owner, linkbert_jax/data/features.py: in a copy of the
package where features.py alone renames two features, the builder writes the new names,
the input pipeline reads them, and the two agree record by record (ids, token types,
relations)."""
import os
import shutil
import subprocess
import sys

import linkbert_jax

RENAMES = {'INPUT_IDS = "input_ids"': 'INPUT_IDS = "token_ids"',
           'A_LENGTH = "a_length"': 'A_LENGTH = "first_segment_length"'}

PROBE = r"""
import json, random, sys
import numpy as np
import tensorflow as tf
import linkbert_jax
from helpers.corpora import run_build, synthetic_doc_text, write_jsonl
from linkbert_jax.pretrain import input_pipeline
from linkbert_jax.data import features, records
from linkbert_jax.data.samples import minilm_dir

copy, work = sys.argv[1:]
assert linkbert_jax.__file__.startswith(copy), linkbert_jax.__file__
rng = random.Random(0)
write_jsonl(f"{work}/docs.jsonl", [
    {"id": f"d{i}", "title": f"Doc {i}", "text": synthetic_doc_text(rng, 12),
     "links": [f"d{(i + 1) % 30}", f"d{(i + 7) % 30}"]} for i in range(30)])
manifest = run_build("--input", f"{work}/docs.jsonl", "--format", "jsonl", "--output_dir",
                     f"{work}/data", "--tokenizer", minilm_dir(), "--max_seq_length", 48,
                     "--num_shards", 1, "--eval_fraction", 0.2, "--seed", 1)
path = f"{work}/data/" + manifest["files"]["train"][0]["name"]
raw = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(path))).numpy())
written = [ex for ex in records.iterate_examples(path)]
masking = input_pipeline.MaskingConfig(max_predictions=4, mask_token_prob=0.0,
                                        random_token_prob=0.0)  # chosen ids unchanged
read = [b for b in input_pipeline.batches(
    f"{work}/data", split="train", batch_size=len(written), seq_length=48, masking=masking,
    seed=0, repeat=False, shuffle=False)]
assert len(read) == 1, len(read)
b, agree = read[0], 0
for r, ex in enumerate(written):
    ids, n = ex[features.INPUT_IDS], len(ex[features.INPUT_IDS])
    assert b["input_ids"][r, :n].tolist() == ids
    assert b["token_type_ids"][r, :n].tolist() == features.token_type_ids(
        n, ex[features.A_LENGTH])
    assert ids[features.token_type_ids(n, ex[features.A_LENGTH]).index(1) - 1] == \
        manifest["special_ids"]["sep"]
    assert b["relation"][r] == ex[features.RELATION]
    agree += 1
print("RESULT " + json.dumps({"keys": sorted(raw.features.feature), "agree": agree}))
"""


def test_features_renamed_in_one_place_builder_and_pipeline_agree(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(os.path.dirname(linkbert_jax.__file__), copy / "linkbert_jax",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "linkbert_jax" / "data" / "features.py"
    src = path.read_text()
    for old, new in RENAMES.items():
        assert src.count(old) == 1, old
        src = src.replace(old, new)
    path.write_text(src)
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(copy), tests]))
    r = subprocess.run([sys.executable, "-c", PROBE, str(copy), str(tmp_path)], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = __import__("json").loads(r.stdout.split("RESULT ", 1)[1])
    assert "token_ids" in result["keys"] and "first_segment_length" in result["keys"]
    assert "input_ids" not in result["keys"] and "a_length" not in result["keys"]
    assert result["agree"] > 10
