"""A fine-tuned model as a Hugging Face task model directory (``AutoModelFor*``).

The encoder goes through the pretraining export's name map
(``linkbert_jax.hf.param_mapping``: ``bert.embeddings.*``, ``bert.encoder.*``,
``bert.pooler.*``); the head is one linear layer in PyTorch's layout (``classifier.*`` or
``qa_outputs.*``: weight ``[K, D]``). ``config.json`` names the architecture and carries
``id2label``/``label2id`` and ``problem_type``, so ``transformers`` loads it with no key
missing or unexpected. :func:`verify` compares the reloaded PyTorch model's logits with
the JAX model's.

Where it goes: ``WORKDIR/model`` (``WORKDIR/seed_<s>/model`` with ``--seeds``), through
:mod:`linkbert_jax.hf.export_dir`, the owner of the rule for every export: a run replaces
the model an earlier fine-tuning run left there (marked by ``linkbert_export.json``), and
refuses, before training, any other directory there.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from linkbert_jax.hf import export_dir, hf_files, param_mapping, vocabulary
from linkbert_jax.data.outdir import inside
from linkbert_jax.hf.export_dir import OutputDirError

MODEL_DIR = "model"
_WHERE = dict(what="the fine-tuned model's directory",
              fix="move it away or choose another --workdir")



def state_dict(model, params) -> dict:
    """HF tensors (float32 numpy) of a task model's parameters: the encoder (and pooler,
    where the head has one) by the pretraining export's name map, then the head."""
    import jax
    from flax import traverse_util

    flat = traverse_util.flatten_dict(param_mapping.unstack_layers(
        jax.device_get(params["bert"])))
    groups = ("encoder", "pooler") if ("pooler", "kernel") in flat else ("encoder",)
    sd = {e.hf_saved: e.to_hf(np.asarray(flat[e.path], np.float32), model.config)
          for e in param_mapping.name_map(model.config) if e.group in groups}
    head = params[model.head_name]
    sd[f"{model.head_name}.weight"] = np.ascontiguousarray(np.asarray(head["kernel"],
                                                                      np.float32).T)
    sd[f"{model.head_name}.bias"] = np.asarray(head["bias"], np.float32)
    return sd


def config_dict(model, labels: list, problem_type=None) -> dict:
    d = hf_files.hf_config_dict(model.config)
    for k in ("num_relations", "relation_labels", "tie_word_embeddings"):
        d.pop(k, None)
    d["architectures"] = [type(model).hf_architecture]
    if labels and type(model).__name__ != "MultipleChoice":
        d["id2label"] = {str(i): str(v) for i, v in enumerate(labels)}
        d["label2id"] = {str(v): i for i, v in enumerate(labels)}
    elif problem_type == "regression":
        d["id2label"], d["label2id"] = {"0": "LABEL_0"}, {"LABEL_0": 0}
    if problem_type:
        d["problem_type"] = problem_type
    d["classifier_dropout"] = model.dropout
    return dict(sorted(d.items()))


def model_dirs(workdir: str, seeds: Optional[Sequence[int]]) -> list:
    """Where the runs of ``seeds`` (None: one run in ``workdir``) put their models."""
    outs = [os.path.join(workdir, f"seed_{s}") for s in seeds] if seeds else [workdir]
    return [os.path.join(out, MODEL_DIR) for out in outs]


def check_model_dirs(workdir: str, seeds, init: str, tokenizer: Optional[str]) -> None:
    """Before training: refuse (one line) a model directory the run may not replace,
    or one that holds the run's own ``--init``/``--tokenizer``."""
    for path in model_dirs(workdir, seeds):
        export_dir.check(path, True, export_dir.FINETUNING, **_WHERE)
        for flag, src in (("--init", init), ("--tokenizer", tokenizer)):
            if src and inside(src, path):
                raise OutputDirError(f"{flag} {src} is inside {path}, which this run "
                                     f"replaces with its model; {_WHERE['fix']}")


def save(model, params, out_dir: str, tokenizer, labels: list, problem_type=None) -> str:
    """Write the directory (complete or absent: built under a temporary name, marked
    as an export's; see :func:`check_model_dirs`)."""
    marker = {"written_by": export_dir.FINETUNING,
              "architecture": type(model).hf_architecture}
    with export_dir.staged(out_dir, marker, overwrite=True, **_WHERE) as tmp:
        hf_files.write_weights(tmp, state_dict(model, params))
        hf_files.write_json(os.path.join(tmp, hf_files.CONFIG_NAME),
                            config_dict(model, labels, problem_type))
        tokenizer.save_pretrained(tmp)
        marker[vocabulary.KEY] = vocabulary.of_tokenizer(tmp)  # as the pretraining export
    return out_dir


def verify(model, params, out_dir: str, inputs: dict) -> float:
    """Max |logits(JAX) - logits(transformers, eager, fp32)| on ``inputs`` (numpy
    ``input_ids``/``attention_mask``/``token_type_ids``); needs torch."""
    import torch
    import transformers

    from linkbert_jax.hf.hf_torch import quiet_transformers

    arch = type(model).hf_architecture
    with quiet_transformers():
        hf = getattr(transformers, arch).from_pretrained(
            out_dir, attn_implementation="eager").eval()
    cfg = model.config.replace(dtype="float32")
    ours = np.asarray(type(model)(cfg, model.num_outputs, model.dropout).apply(
        {"params": params}, inputs["input_ids"], inputs["attention_mask"],
        inputs["token_type_ids"], deterministic=True))
    with torch.no_grad():
        out = hf(**{k: torch.from_numpy(np.asarray(inputs[k], np.int64))
                    for k in ("input_ids", "attention_mask", "token_type_ids")})
    theirs = (torch.stack([out.start_logits, out.end_logits], -1)
              if arch == "BertForQuestionAnswering" else out.logits).numpy()
    return float(np.max(np.abs(ours - theirs)))
