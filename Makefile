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

.PHONY: demo test test-all install clean

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

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

clean:
	rm -rf out build *.egg-info
