"""A fine-tuned model as a Hugging Face task model directory (``AutoModelFor*``).

The encoder goes through the pretraining export's name map
(``linkbert_jax.param_mapping``: ``bert.embeddings.*``, ``bert.encoder.*``,
``bert.pooler.*``); the head is one linear layer in PyTorch's layout (``classifier.*`` or
``qa_outputs.*``: weight ``[K, D]``). ``config.json`` names the architecture and carries
``id2label``/``label2id`` and ``problem_type``, so ``transformers`` loads it with no key
missing or unexpected. :func:`verify` compares the reloaded PyTorch model's logits with
the JAX model's.
"""
from __future__ import annotations

import os
import shutil

import numpy as np

from linkbert_jax import hf_files, param_mapping

# Flax task model class -> transformers class
ARCHITECTURES = {
    "SequenceClassifier": "BertForSequenceClassification",
    "MultipleChoice": "BertForMultipleChoice",
    "TokenClassifier": "BertForTokenClassification",
    "SpanExtractor": "BertForQuestionAnswering",
}


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
    d["architectures"] = [ARCHITECTURES[type(model).__name__]]
    if labels and type(model).__name__ != "MultipleChoice":
        d["id2label"] = {str(i): str(v) for i, v in enumerate(labels)}
        d["label2id"] = {str(v): i for i, v in enumerate(labels)}
    elif problem_type == "regression":
        d["id2label"], d["label2id"] = {"0": "LABEL_0"}, {"LABEL_0": 0}
    if problem_type:
        d["problem_type"] = problem_type
    d["classifier_dropout"] = model.dropout
    return dict(sorted(d.items()))


def save(model, params, out_dir: str, tokenizer, labels: list, problem_type=None) -> str:
    """Write the directory (complete or absent: built under a temporary name)."""
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    hf_files.write_weights(tmp, state_dict(model, params))
    hf_files.write_json(os.path.join(tmp, hf_files.CONFIG_NAME),
                        config_dict(model, labels, problem_type))
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def verify(model, params, out_dir: str, inputs: dict) -> float:
    """Max |logits(JAX) - logits(transformers, eager, fp32)| on ``inputs`` (numpy
    ``input_ids``/``attention_mask``/``token_type_ids``); needs torch."""
    import torch
    import transformers

    from linkbert_jax.hf_torch import quiet_transformers

    arch = ARCHITECTURES[type(model).__name__]
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
