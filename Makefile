# Two commands for a new user: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: install install-dev run test lint typecheck bench lock clean

# A stamp per lock file: re-installs only when the lock or pyproject.toml changed.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	@touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/store-server run $(ARGS)

test: install-dev lint typecheck
	$(BIN)/python -m pytest $(ARGS)

lint: install-dev
	$(BIN)/ruff check services shared tests bench
	$(BIN)/ruff format --check services shared tests bench
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

# Rates against Orthanc and storescp (received, and end to end), then the consumers' CPU per
# instance and two routers against one; the rates saved in bench/results/ (JSON, PNG).
bench: install-dev
	@mkdir -p bench/results
	$(BIN)/python bench/receive_rate.py --save bench/results/rates.json --chart bench/results/rates.png $(ARGS)
	$(BIN)/python bench/consumer_cpu.py --count 1000 --scale

# Re-resolve the locked versions after changing dependencies in pyproject.toml.
lock: install-dev
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 --extra dev pyproject.toml -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
