# qifsim: `make demo` runs the main job, `make test` the default test suite.
# Both build the two environments first (idempotent: a second run takes seconds).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
VENV_LAVA := .venv-lava
VENV_NETX := .venv-netx
PY        := $(VENV)/bin/python
PY_LAVA   := $(VENV_LAVA)/bin/python
PY_NETX   := $(VENV_NETX)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet --constraint constraints.txt
# pip's configuration on some machines lists local index folders that do not
# exist; drop those warnings (pip's own exit status still counts: pipefail).
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

# Python 3.11 for the torch side (the machine default).
PYTHON311 ?= $(shell command -v python3.11 >/dev/null 2>&1 && python3.11 --version >/dev/null 2>&1 && echo python3.11 || echo python3)
# Python 3.10 for the Lava side: python3.10 on PATH, else pyenv's 3.10.x.
PYTHON310 ?= $(shell if python3.10 --version >/dev/null 2>&1; then echo python3.10; \
	else ls -d $$(pyenv root 2>/dev/null)/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V | tail -n 1; fi)

.PHONY: help setup setup-netx setup-fuzz demo test test-all bench gpu-wheels lint fuzz clean-venvs

help:
	@echo "make setup     build .venv (Python 3.11, torch) and .venv-lava (Python 3.10, lava-nc)"
	@echo "make demo      run the main job: qifsim demo"
	@echo "make test      run the default (fast) test suite"
	@echo "make test-all  run every test, the slow ones included (fuzz smoke run; netx parity"
	@echo "               in .venv-netx when it exists)"
	@echo "make setup-netx build .venv-netx: stock lava-dl netx + lava-nc + torch 2.3.1 (large)"
	@echo "make fuzz      fuzz every reader for FUZZ_SECONDS (default 120) each, with coverage"
	@echo "make bench     run the benchmarks (JSON in benchmarks/results/)"
	@echo "make gpu-wheels  peers' wheels for benchmarks/gpu_device.sh (GPU: python benchmarks/gpu.py)"
	@echo "make lint      ruff check"

setup: $(VENV)/.qifsim-ready $(VENV_LAVA)/.qifsim-ready

# torch/torchvision first, exactly pinned, so pip takes them from the local disk.
# tonic (GPL-3.0) is installed for cross-checks and benchmarks only; qifsim never imports it
# unless asked to.
$(VENV)/.qifsim-ready: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) torch==2.14.1 torchvision==0.29.1 $(QUIET_PIP)
	$(PY) -m pip install $(PIP_FLAGS) -e '.[interop,bench,dev,tonic,aedat4,neurobench]' $(QUIET_PIP)
	@touch $@

$(VENV_LAVA)/.qifsim-ready: hardware/lava/pyproject.toml constraints.txt
	@if [ -z "$(PYTHON310)" ]; then echo "error: Python 3.10 not found (needed by lava-nc 0.10.0). Install it (e.g. 'pyenv install 3.10') or set PYTHON310=/path/to/python3.10." >&2; exit 1; fi
	@test -x $(PY_LAVA) || $(PYTHON310) -m venv $(VENV_LAVA)
	$(PY_LAVA) -m pip install $(PIP_FLAGS) -e hardware/lava $(QUIET_PIP)
	@touch $@

# Optional third environment (never part of `make setup`): stock lava-dl 0.6.0 (netx) with
# lava-nc 0.10.0 and the torch 2.3.1 lava-dl requires (PyPI's CUDA build: a download of
# several GB), plus qifsim_lava, for tests/test_export_netx.py.
setup-netx: $(VENV_NETX)/.qifsim-ready

$(VENV_NETX)/.qifsim-ready: hardware/lava/pyproject.toml constraints.txt
	@if [ -z "$(PYTHON310)" ]; then echo "error: Python 3.10 not found (needed by lava-dl 0.6.0). Install it (e.g. 'pyenv install 3.10') or set PYTHON310=/path/to/python3.10." >&2; exit 1; fi
	@test -x $(PY_NETX) || $(PYTHON310) -m venv $(VENV_NETX)
	$(PY_NETX) -m pip install $(PIP_FLAGS) lava-dl pytest -e hardware/lava $(QUIET_PIP)
	@touch $@

demo: setup
	$(VENV)/bin/qifsim demo

test: setup
	$(PY) -m pytest

test-all: setup setup-fuzz
	$(PY) -m pytest -m ""
	@if [ -x $(PY_NETX) ]; then \
		echo "$(PY_NETX) -m pytest -m '' tests/test_export_netx.py"; \
		$(PY_NETX) -m pytest -m "" -p no:cacheprovider tests/test_export_netx.py; \
	else echo "skipped tests/test_export_netx.py: no $(VENV_NETX) (make setup-netx builds it)"; fi

bench: setup
	$(PY) benchmarks/neurons.py
	$(PY) benchmarks/events.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/energy.py
	$(PY) benchmarks/quadratic.py
	$(PY) benchmarks/quadratic_theory.py
	$(PY) benchmarks/lava.py $$(test -f qifsim-demo/qif/last.pt && echo --checkpoint qifsim-demo/qif/last.pt)

# Peers' wheels for benchmarks/gpu_device.sh on a GPU machine (Python 3.12, no network there):
# pure-Python wheels of the versions constraints.txt pins; norse ships an sdist only, built here.
GPU_WHEELS := snntorch==1.0.0 spikingjelly==2.0.0 nir==1.0.8 nirtorch==2.6 loguru==0.7.3 scienceplots==2.2.2
gpu-wheels: setup
	$(PY) -m pip download --disable-pip-version-check --quiet --no-deps --only-binary=:all: \
		--python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
		-d .whl $(GPU_WHEELS) $(QUIET_PIP)
	$(PY) -m pip wheel --disable-pip-version-check --quiet --no-deps -w .whl norse==1.1.0 $(QUIET_PIP)

lint: setup
	$(VENV)/bin/ruff check qifsim hardware tests benchmarks fuzz

# Fuzzing (the optional `fuzz` extra: atheris + coverage; atheris 2.3.0 in .venv-lava for the
# Lava-side exchange reader). The smoke run (2,000 executions per target) is a slow test.
FUZZ_SECONDS ?= 120
setup-fuzz: $(VENV)/.qifsim-fuzz-ready

$(VENV)/.qifsim-fuzz-ready: $(VENV)/.qifsim-ready $(VENV_LAVA)/.qifsim-ready
	$(PY) -m pip install $(PIP_FLAGS) -e '.[fuzz]' $(QUIET_PIP)
	$(PY_LAVA) -m pip install $(PIP_FLAGS) atheris coverage $(QUIET_PIP)
	@touch $@

fuzz: setup setup-fuzz
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS) --coverage --json fuzz/results/fuzz.json

clean-venvs:
	rm -rf $(VENV) $(VENV_LAVA) $(VENV_NETX)
