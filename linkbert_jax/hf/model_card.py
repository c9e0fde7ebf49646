"""The model card (``README.md``) of an export, written from the training workdir.

Every figure is read, never typed: the architecture and parameter count from the exported
config and params, the data from the build's ``manifest.json``, the training setup and the
commands from the exported step (the config it was trained with, ``step_config``), the
metrics from the workdir's ``metrics.jsonl`` (the last train and eval rows at or before
the exported step).
Hugging Face conventions: YAML metadata (``library_name``, ``pipeline_tag: fill-mask``,
``tags``, a ``license`` left for the user), then prose.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
from typing import Optional

from linkbert_jax import objectives
from linkbert_jax.data import arm_checks
from linkbert_jax.data.features import RELATIONS
from linkbert_jax.model import ModelConfig

CARD_NAME = "README.md"
METRICS = ("mlm_loss", "mlm_accuracy", "drp_loss", "drp_accuracy",
           *(f"drp_accuracy_{r}" for r in RELATIONS))
# What each objective (config.objective) pretrained, in the card's words.
OBJECTIVE_PROSE = {
    "drp": "masked language modelling plus document relation prediction (DRP), a 3-way "
           "classification of segment pairs as contiguous, random or linked",
    "nsp": "masked language modelling plus BERT's next sentence prediction (NSP), a 2-way "
           "classification of segment pairs as contiguous or random (LinkBERT's ablation "
           "without links)",
    "mlm": "masked language modelling only, with no relation head (LinkBERT's \"no DRP\" "
           "ablation)",
}
OBJECTIVE_TAGS = {"drp": "document-relation-prediction", "nsp": "next-sentence-prediction",
                  "mlm": "masked-language-modeling"}

# Run as written by tests/test_export.py against a real export (keep docs/convert.md's
# copy identical: the test checks that too).
DRP_SNIPPET = '''\
import os

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

model_dir = "path/to/hf_dir"
encoder = AutoModel.from_pretrained(model_dir).eval()
weights = load_file(os.path.join(model_dir, "model.safetensors"))
drp = torch.nn.Linear(encoder.config.hidden_size, weights["drp.weight"].shape[0])
drp.load_state_dict({"weight": weights["drp.weight"].float(),
                     "bias": weights["drp.bias"].float()})

tokenizer = AutoTokenizer.from_pretrained(model_dir)
batch = tokenizer(["Segment A of a document."], ["A segment B."], return_tensors="pt")
with torch.no_grad():
    drp_logits = drp(encoder(**batch).pooler_output)  # [batch, 3]
relation = ["contiguous", "random", "linked"][drp_logits.argmax(-1).item()]
'''

AUTO_SNIPPET = '''\
from transformers import (AutoModel, AutoModelForMaskedLM,
                          AutoModelForSequenceClassification, AutoTokenizer)

model_dir = "path/to/hf_dir"
tokenizer = AutoTokenizer.from_pretrained(model_dir)  # use_fast=False works too
encoder = AutoModel.from_pretrained(model_dir)          # BertModel (+ pooler)
mlm = AutoModelForMaskedLM.from_pretrained(model_dir)   # the trained MLM head
clf = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
'''


@dataclasses.dataclass
class Facts:
    """What the card says, gathered by :func:`gather`."""
    step: int
    config: ModelConfig  # as exported (fine-tuning dropout)
    pretrain_dropout: tuple  # (hidden, attention) the run trained with
    dropout_source: str
    params_encoder: int  # BertModel parameters
    params_total: int  # with the pretraining heads (MLM, and DRP or NSP)
    train_config: dict  # the config the step was trained with (step_config.read)
    manifest: Optional[dict]
    manifest_path: str
    train_row: Optional[dict]  # last metrics.jsonl rows at or before ``step``
    eval_row: Optional[dict]
    train_commands: list  # argv lists, oldest first, up to the run that saved the step
    export_command: list
    weight_files: list
    dtype: str
    verification: Optional[dict] = None  # max abs diffs, when verified


def last_rows(metrics_path: str, step: int) -> tuple[Optional[dict], Optional[dict]]:
    """The last train row and the last eval row of ``metrics.jsonl`` at or before ``step``
    (a resumed run logs some steps again: the later lines win)."""
    from linkbert_jax.infra.plots import read_metrics
    if not os.path.exists(metrics_path):
        return None, None
    rows = [r for r in read_metrics(metrics_path) if r.get("step", step + 1) <= step]
    train = [r for r in rows if "mlm_loss" in r]
    ev = [r for r in rows if "eval_mlm_loss" in r]
    return (train[-1] if train else None), (ev[-1] if ev else None)


def objective(f: Facts) -> str:
    """The objective the exported model was pretrained with (its relation head's)."""
    return objectives.objective_of(f.config.num_relations)


def metrics(f: Facts) -> tuple:
    """The card's metric columns: MLM, and the relation head's (its relations only)."""
    rels = objectives.head_relations(objective(f))
    return METRICS[:2] + ((METRICS[2:4] + tuple(f"drp_accuracy_{r}" for r in rels))
                          if rels else ())


def render(f: Facts) -> str:
    sections = [_front_matter(f), _intro(f), _model(f), _data(f), _training(f),
                _commands(f), _usage(f)]
    if f.verification:
        sections.append("## Verification\n\nReloaded with `transformers` (PyTorch) at export "
                        "and compared with the JAX model on a random padded batch, max abs "
                        "difference: " + ", ".join(f"{k} {v:.1e}" for k, v in
                                                    f.verification.items()) + ".\n")
    return "\n".join(sections)


def write(out_dir: str, facts: Facts) -> str:
    path = os.path.join(out_dir, CARD_NAME)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render(facts))
    return path


def _front_matter(f: Facts) -> str:
    return ("---\nlibrary_name: transformers\npipeline_tag: fill-mask\n"
            "license: \"\"  # fill in: the licenses of the starting checkpoint and the data\n"
            f"tags:\n- bert\n- linkbert\n- fill-mask\n- {OBJECTIVE_TAGS[objective(f)]}\n"
            "- linkbert-jax\n---\n")


def _intro(f: Facts) -> str:
    start = f.train_config.get("init_from_hf")
    how = (f"continued from `{start}`" if start else "trained from random initialisation")
    return (f"# LinkBERT encoder (linkbert-jax, step {f.step:,})\n\n"
            "A BERT encoder pretrained with linkbert-jax (LinkBERT, Yasunaga et al., ACL "
            f"2022), objective `{objective(f)}`: {OBJECTIVE_PROSE[objective(f)]}. "
            f"It was {how} and exported at step {f.step:,}. "
            "It is a plain `bert` model: every `transformers` BERT class loads it.\n")


def _model(f: Facts) -> str:
    c = f.config
    start = f.train_config.get("init_from_hf") or "none (random initialisation)"
    h, a = f.pretrain_dropout
    rows = [
        ("architecture", f"BERT, {c.num_hidden_layers} layers, hidden {c.hidden_size}, "
                         f"{c.num_attention_heads} heads, intermediate {c.intermediate_size}, "
                         f"vocabulary {c.vocab_size:,}, {c.max_position_embeddings} positions"),
        ("objective", f"`{objective(f)}` (config.objective)"),
        ("parameters", f"{f.params_encoder:,} in `BertModel` (embeddings, encoder, pooler); "
                       f"{f.params_total:,} with the pretraining heads"),
        ("starting checkpoint", f"`{start}`"),
        ("dropout in config.json", f"hidden {c.hidden_dropout_prob}, attention "
                                   f"{c.attention_probs_dropout_prob}: for fine-tuning, "
                                   f"from {f.dropout_source}"),
        ("dropout in pretraining", f"hidden {h}, attention {a}"),
        ("weights", ", ".join(f"`{w}`" for w in f.weight_files) + f" ({f.dtype})"),
    ]
    return "## Model\n\n" + _table(("", ""), rows)


def _data(f: Facts) -> str:
    m = f.manifest
    if m is None:
        return f"## Data\n\nThe build's manifest was not found at `{f.manifest_path}`.\n"
    n, per = m["num_examples"], m.get("num_documents_per_split", {})
    rows = [
        ("documents", f"{m['num_documents']:,}" + (
            f" (train {per['train']:,}, eval {per['eval']:,})" if per else "")),
        ("links resolved", f"{m['num_links_resolved']:,}"),
        ("link options", ", ".join(f"{k} {arm_checks.data_option(m, k)}"
                                   for k in arm_checks.SWITCHES)),
        ("tokens", f"{m['num_tokens']:,}"),
        ("pairs, train", f"{n['train']:,} (" + _relations(m["relations"]) + ")"),
        ("pairs, eval", f"{n['eval']:,} (" + _relations(m.get("relations_eval", {})) + ")"),
        ("pair length", f"{m['max_seq_length']} tokens"),
        ("tokenizer", f"{m.get('tokenizer_class', '?')}, vocabulary {m['vocab_size']:,} "
                      f"(sha256 {m.get('vocab_sha256', '?')[:12]})"),
    ]
    return f"## Data\n\nFrom `{f.manifest_path}`.\n\n" + _table(("", ""), rows)


def _relations(counts: dict) -> str:
    return ", ".join(f"{r} {counts.get(r, 0):,}" for r in RELATIONS)


def _training(f: Facts) -> str:
    t = {k: _n(v) for k, v in f.train_config.items()}
    rows = [("steps", f"{f.step:,} of {t.get('num_train_steps', '?')}"),
            ("batch", f"{t.get('global_batch_size', '?')} sequences of "
                      f"{t.get('seq_length', '?')} tokens"),
            ("learning rate", f"{t.get('learning_rate', '?')} peak, "
                              f"{t.get('warmup_steps', '?')} warmup steps, linear decay; AdamW"),
            ("seed", t.get("seed", "?"))]
    text = "## Training\n\n" + _table(("", ""), rows)
    header = ("split", "step", *(k.replace("drp_accuracy_", "DRP acc. ")
                                  .replace("_", " ").replace("mlm", "MLM").replace("drp", "DRP")
                                  for k in metrics(f)))
    metric_rows = [_metric_row(metrics(f), name, row, prefix)
                   for name, row, prefix in (("train", f.train_row, ""),
                                             ("eval", f.eval_row, "eval_")) if row]
    if metric_rows:
        text += ("\nMetrics (train: the mean over the last logging interval; eval: the "
                 "whole eval split):\n\n" + _table(header, metric_rows))
    return text


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _metric_row(keys: tuple, name: str, row: dict, prefix: str) -> tuple:
    return (name, str(row["step"]), *(f"{row[prefix + k]:.4f}" if prefix + k in row else "-"
                                      for k in keys))


def _commands(f: Facts) -> str:
    train = "\n".join(_shell(c) for c in f.train_commands) or \
        "# not recorded (the workdir predates its command history)"
    return ("## How it was made\n\nTraining (each start or resume of the run):\n\n"
            f"```bash\n{train}\n```\n\nExport:\n\n```bash\n{_shell(f.export_command)}\n```\n")


def _shell(argv: list) -> str:
    argv = ["python", *argv[1:]] if argv and os.path.basename(argv[0]).startswith(
        "python") else argv
    return " ".join(shlex.quote(a) for a in argv)


def _usage(f: Facts) -> str:
    versions = ("transformers 4.16 and later read this directory (4.16 to 4.22 its "
                "`pytorch_model.bin`)" if "pytorch_model.bin" in f.weight_files else
                "transformers 4.23 and later read this directory; older versions need "
                "`pytorch_model.bin`: export with `--pytorch_bin`")
    text = (f"## Use\n\nWith the Auto classes ({versions}):\n\n```python\n" + AUTO_SNIPPET
            + "```\n")
    head = {"drp": "\nThe DRP head (`drp.weight`, `drp.bias`) is not a `transformers` "
                   "head; it applies to `pooler_output` like this:\n\n```python\n"
                   + DRP_SNIPPET + "```\n",
            "nsp": "\nThe NSP head is BERT's own (`cls.seq_relationship`, 2-way): "
                   "`BertForPreTraining` loads it, `seq_relationship_logits` are 0 "
                   "contiguous, 1 random.\n",
            "mlm": "\nThere is no relation head (MLM only): `BertForMaskedLM` is the whole "
                   "pretrained model.\n"}
    return text + head[objective(f)]


def _table(header: tuple, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"

