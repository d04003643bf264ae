# MLaaS4HEP: `make demo` runs the embedded default job, `make test` the test suite.
# Both set up what they need first (idempotent).

VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench setup system-deps node-deps im clean wheels

demo: system-deps $(STAMP)
	$(VENV)/bin/mlaas4hep demo

test: system-deps node-deps $(STAMP) im
	$(PYTHON) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ansible-lint ansible/

bench: $(STAMP)
	$(PYTHON) benchmarks/pipeline.py --memory-events 5000000

setup: $(STAMP)

$(STAMP): mlaas4hep/pyproject.toml cli/pyproject.toml scripts/setup-python.sh
	scripts/setup-python.sh
	touch $@

# Both distributions as wheels in dist/; the CLI's carries the toolkit's files (cli/setup.py).
wheels: $(STAMP)
	$(PYTHON) -m pip wheel --no-deps --wheel-dir dist ./mlaas4hep ./cli

system-deps:
	scripts/setup-system.sh

node-deps:
	scripts/setup-node.sh

im: $(STAMP)
	scripts/setup-im.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo runs .cache dist
