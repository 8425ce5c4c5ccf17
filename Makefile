# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv (if missing) and install torch==2.13.0 first, then gwinfer and its extras.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gwinfer-installed
# glibc malloc tuning that makes torch on CPU ~3x faster on these VMs (measured in bench/bench_malloc.py)
export MALLOC_MMAP_MAX_ ?= 0
export MALLOC_TRIM_THRESHOLD_ ?= 10000000000
# one torch thread per process: faster here than two contending threads (bench/bench_wavenet.py)
export OMP_NUM_THREADS ?= 1

# A separate Python 3.11 venv with NVIDIA's Triton server (bundled in nvidia-pytriton) for the real-Triton
# test (tests/serving/test_triton_real.py) and bench rows; numpy<2 there (its Python-backend stub needs it).
TRITON_ENV    := .triton-env
TRITON_PYTHON ?= python3.11

# A separate venv with pesummary (it pins numpy<2.4 and matplotlib<3.11, older than gwinfer's) for
# tests/evaluation/test_pesummary.py, which writes results with gwinfer and reads them there.
PESUMMARY_ENV := .pesummary-env

.PHONY: demo test test-all install clean triton-env pesummary-env

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[mpi,serving,test]'
	$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'torch was replaced: ' + v)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gwinfer demo --out out/demo

LINTED := gwinfer tests bench scripts

test: $(STAMP)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m pytest -q -m ""

clean:
	rm -rf out build *.egg-info

triton-env:
	test -x $(TRITON_ENV)/bin/python || $(TRITON_PYTHON) -m venv $(TRITON_ENV)
	$(TRITON_ENV)/bin/python -m pip install -q --upgrade pip
	$(TRITON_ENV)/bin/python -m pip install -q 'numpy<2' nvidia-pytriton onnxruntime
	$(TRITON_ENV)/bin/python -c "import numpy, onnxruntime, sys; sys.exit(0 if int(numpy.__version__.split('.')[0]) < 2 else 'numpy ' + numpy.__version__ + ' in $(TRITON_ENV): the Triton Python-backend stub needs numpy<2')"
	if [ -x $(PY) ]; then $(PY) -m gwinfer.cli.triton --check --env $(TRITON_ENV); fi
	@echo "Triton env ready in $(TRITON_ENV). The tests find it there by default (make test runs tests/serving/test_triton_real.py);"
	@echo "elsewhere point them at it: GWINFER_TRITON_ENV=$(CURDIR)/$(TRITON_ENV) $(PY) -m pytest -q tests/serving/test_triton_real.py"

pesummary-env:
	test -x $(PESUMMARY_ENV)/bin/python || $(TRITON_PYTHON) -m venv $(PESUMMARY_ENV)
	$(PESUMMARY_ENV)/bin/python -m pip install -q --upgrade pip
	$(PESUMMARY_ENV)/bin/python -m pip install -q pesummary bilby
	$(PESUMMARY_ENV)/bin/python -c "import pesummary, bilby; print('pesummary', pesummary.__version__, 'bilby', bilby.__version__)"
	@echo "pesummary env ready in $(PESUMMARY_ENV); tests/evaluation/test_pesummary.py finds it there (or via GWINFER_PESUMMARY_ENV)."
