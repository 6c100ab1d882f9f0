# rbmtools: `make test` and `make demo` work from a fresh clone with nothing but python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pyproject.sha256

.PHONY: venv test lint format bench demo lab clean

# (Re)build the virtualenv when it is missing or pyproject.toml changed since it was built.
venv:
	@if [ -x "$(BIN)/python" ] && [ -f "$(STAMP)" ] && sha256sum pyproject.toml | cmp -s - "$(STAMP)"; then \
		:; \
	else \
		echo "Building $(VENV) (missing, or pyproject.toml changed)"; \
		rm -rf "$(VENV)" && \
		$(PYTHON) -m venv "$(VENV)" && \
		"$(BIN)/python" -m pip install --quiet --upgrade pip && \
		"$(BIN)/python" -m pip install --quiet -e '.[test]' && \
		sha256sum pyproject.toml > "$(STAMP)"; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest

bench: venv
	@set -e; for script in benchmarks/[!_]*.py; do \
		[ -e "$$script" ] || { echo "no benchmarks yet"; break; }; \
		echo "== $$script"; \
		$(BIN)/python "$$script"; \
	done

# The whole flow on the embedded emulator (no Google account): a revoke experiment, its log
# analysis and the best TTL per use case, as HTML reports under reports/.
demo: venv
	$(BIN)/python -m rbmtools.notebook.demo --output reports

# JupyterLab on notebooks/, bound to 127.0.0.1; installs the 'lab' extra the first time.
# (As root, e.g. in a container, Jupyter wants --allow-root.)
lab: venv
	@"$(BIN)/python" -c "import jupyterlab" 2>/dev/null || \
		"$(BIN)/python" -m pip install --quiet -e '.[lab]'
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
