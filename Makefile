# The two commands a newcomer needs: `make run` and `make test`. Python 3.11+ is all they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test test-full install lint typecheck format check-migrations clean soak bench bench-quick screenshots

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Development server on SQLite with demo users, the catalogue and (without real Stripe keys)
# the offline Stripe emulator; DEBUG on: local only.
run: install
	PORT=$(PORT) $(BIN)/python -m devtools.devserver

# The whole suite, one worker per core, test databases kept between runs (new migrations are
# still applied; --dist loadgroup keeps a module that starts a server on one worker); set
# DATABASE_URL=postgres://... to run it on PostgreSQL. The proofs (property
# tests, API fuzzing, screenshots) run small here; `make test-full` runs them at CI's size.
# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE is set
# on the session machines and in many images): without it every worker compiles the project
# and pytest re-rewrites every test module on each run, about 20 s of a run on 2 cores.
TEST_WORKERS ?= auto
test: install
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup \
		--reuse-db $(PYTEST_ARGS)

test-full:
	HRVSTR_PROOFS=full $(MAKE) test

# Simulated users against gunicorn + the offline Stripe on PostgreSQL, with faults; prints a
# table and fails on drift (see bench/soak.py). SOAK_ARGS="--duration 300 --users 24".
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Issue 7's benchmarks, one table (needs PostgreSQL and wrk; see bench/run.py): aimed at 10
# minutes on a quiet 2-core machine (on 2026-12-03: 489 s on the fastest machine, 542-632 s
# on the last, 671-700 s on one half as fast; 582 s and 448 s on 2026-12-04); bench-quick
# at two (102 s; 142-148 s; 146 s and 100-114 s).
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: install
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

lint: install typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy with the Django and DRF plugins (settings: hrvstr.settings_test; no database needed).
# About 30 s cold, 2 s with the cache in .mypy_cache/. Configured in pyproject.toml.
typecheck: install
	$(BIN)/mypy
	cd stripe_emulator && $(abspath $(BIN))/mypy  # strict, with its own configuration

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-migrations: install
	HRVSTR_TESTING=true $(BIN)/python manage.py makemigrations --check --dry-run

# PNGs of /pricing/, /billing/, /activity/ and the admin dashboard at 1280 and 390 pixels wide,
# from a throw-away SQLite database with demo data (needs Debian's chromium: apt-get install chromium).
screenshots: install
	$(BIN)/python -m devtools.screenshots --out screenshots

clean:
	rm -rf $(VENV) var staticfiles
