# The two commands a new user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint docs bench bench-quick clean
DOCS := README.md docs/configuration.md docs/metrics.md docs/schema.md docs/cli.md docs/development.md

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/ledger serve

lint: $(STAMP)
	$(BIN)/ruff check ledger tests bench docs
	$(BIN)/ruff format --check ledger tests bench docs
	$(BIN)/mypy ledger bench docs/reference.py
	$(BIN)/cog --check -I docs $(DOCS)

docs: $(STAMP)
	$(BIN)/cog -r -I docs $(DOCS)

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
