"""Fine-tuning parity with Hugging Face PyTorch, for every task family.

From the same initial weights (a tiny random BERT with MiniLM's tokenizer, a new head):
the JAX task model's logits equal those of the exported ``AutoModelFor*`` (<= 1e-4, fp32,
eager attention), the export loads with no key missing or unexpected, and one epoch
with dropout off and the same batches gives the same loss at every step (<= 1e-3) as a
small PyTorch loop (HF's own loss, AdamW with the same decay groups, clipping and
linear schedule). The batches are grouped by length; our side runs as the fine-tuning
loop does, on batches packed several examples to a row (the pooled heads) or cut to their
rows' length (tokcls: a multiple of 8, 6 buckets), PyTorch's on the same rows one to a
row, padded to ``max_seq_length``.
"""
import dataclasses

import jax
import numpy as np
import pytest

from helpers import finetune_data
from linkbert_jax.pretrain import steps
from linkbert_jax.finetune import config as ft_config
from linkbert_jax.finetune import data, export, pretrained, tasks, train
from linkbert_jax.hf.hf_torch import load_info_torch

pytestmark = pytest.mark.slow

FAMILIES = ["seqcls", "multilabel", "regression", "mc", "tokcls", "qa"]
BATCH, LENGTH = 8, 48


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return finetune_data.tiny_bert(tmp_path_factory.mktemp("tiny"))


def _setup(family, tiny_dir, tmp_path):
    files = finetune_data.real_task(family, tmp_path / "data", n_train=36, n_dev=8)
    c = ft_config.get_config(family, max_seq_length=LENGTH, batch_size=BATCH,
                             eval_batch_size=BATCH, classifier_dropout=0.0,
                             learning_rate=1e-3, warmup_steps=2, weight_decay=0.01,
                             num_train_epochs=1.0, doc_stride=16, length_buckets=6,
                             group_by_length=True)
    pre = pretrained.load(tiny_dir)
    pre.config = pre.config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    tok = pretrained.load_tokenizer(pre.tokenizer_dir)
    files.pop("test")
    td = tasks.load(tasks.get_task(family), files, tok, c, str(tmp_path / "cache"))
    c = train.resolve_steps(c, len(td.splits["train"]))
    setup = train.build(c, pre, td)
    params = train.initial_params(setup, pre, td.splits["train"], seed=3)
    out = export.save(setup.model, params, str(tmp_path / "hf"), tok, td.labels,
                      td.task.problem_type)
    return c, td, setup, params, out


def _torch_targets(family, labels, n):
    import torch
    y = torch.from_numpy(np.asarray(labels[:n]))
    if family == "qa":
        return {"start_positions": y[:, 0].long(), "end_positions": y[:, 1].long()}
    return {"labels": y.float() if family in ("multilabel", "regression") else y.long()}


def _torch_losses(family, hf_dir, c, split, arch, lengths):
    """One epoch of a plain PyTorch loop over the same batches."""
    import torch
    import transformers

    model = getattr(transformers, arch).from_pretrained(hf_dir, attn_implementation="eager")
    model.train()
    named = list(model.named_parameters())
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c.learning_rate, betas=(c.adam_b1, c.adam_b2), eps=c.adam_eps)
    sched = transformers.get_linear_schedule_with_warmup(opt, c.warmup_steps,
                                                         c.num_train_steps)
    losses = []
    for batch in data.train_batches(split, c.batch_size, c.seed, 0, lengths=lengths):
        n = int(batch["example_weight"].sum())
        inputs = {k: torch.from_numpy(np.asarray(batch[k][:n], np.int64))
                  for k in data.INPUTS}
        loss = model(**inputs, **_torch_targets(family, batch["labels"], n)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip_norm)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_and_one_epoch_match_transformers(family, tiny, tmp_path):
    c, td, setup, params, hf_dir = _setup(family, tiny, tmp_path)
    arch = type(setup.model).hf_architecture
    info = load_info_torch(hf_dir, arch)
    assert not info["missing_keys"] and not info["unexpected_keys"], info

    dev = td.splits["validation"]
    inputs = {k: dev.arrays[k][:BATCH] for k in data.INPUTS}
    assert export.verify(setup.model, params, hf_dir, inputs) <= 1e-4

    train_fn, eval_fn = train.compile_steps(setup, td.task.loss, c)
    cut = train.batch_lengths(setup, td.task, c, training=True)
    full = train.logits_of(eval_fn, params, dev, setup, BATCH)
    short = train.logits_of(eval_fn, params, dev, setup, BATCH, cut)
    real = dev.arrays["attention_mask"].astype(bool)  # per-token logits: at real tokens
    pick = (lambda x: x[real]) if full.ndim == 3 else (lambda x: x)
    np.testing.assert_allclose(pick(short), pick(full), atol=1e-5, rtol=0)
    state = steps.state_from_params(params, setup.tx, setup.state_sh)
    ours, tokens = [], []
    for batch in data.train_batches(td.splits["train"], c.batch_size, c.seed, 0, lengths=cut):
        tokens.append(batch["input_ids"].size / (c.batch_size * LENGTH))
        state, m = train_fn(state, {k: jax.numpy.asarray(v) for k, v in batch.items()},
                            jax.random.key(0))
        ours.append(float(m["loss"]))
    # every family but QA (whose softmaxes span the padding) computed fewer positions:
    # packed (the pooled heads) or cut (tokcls)
    assert (cut.pack > 0) == (family not in ("tokcls", "qa"))
    choices = 4 if family == "mc" else 1
    assert (min(tokens) < choices) == (family != "qa"), tokens
    theirs = _torch_losses(family, hf_dir, c, td.splits["train"], arch,  # the same rows,
                           dataclasses.replace(cut, keys=(), pack=0))  # full length
    assert len(ours) == len(theirs) == c.num_train_steps >= 4
    np.testing.assert_allclose(ours, theirs, atol=1e-3, rtol=0)
    assert ours[-1] != ours[0]  # the steps did update the model


def test_head_init_is_the_same_with_the_encoder_loaded_or_drawn(tiny, tmp_path):
    """``initial_params`` compiles the head's init alone when the encoder is loaded: the
    head gets the values of the full init with the same seed, the encoder the file's."""
    c, td, setup, loaded, _ = _setup("seqcls", tiny, tmp_path)
    pre = pretrained.load(tiny)
    drawn = train.initial_params(setup, pre, td.splits["train"], seed=3, random_init=True)
    assert set(drawn) == set(loaded) and len(drawn) > 1
    for name in set(drawn) - {"bert"}:
        jax.tree_util.tree_map(np.testing.assert_array_equal, drawn[name], loaded[name])
    flat = jax.tree_util.tree_leaves_with_path
    for (path, a), (_, b) in zip(flat(loaded["bert"]), flat(pre.params)):
        np.testing.assert_array_equal(a, b, err_msg=str(path))
    assert not np.array_equal(drawn["bert"]["embeddings"]["word_embeddings"]["embedding"],
                              loaded["bert"]["embeddings"]["word_embeddings"]["embedding"])
