# Two commands on a fresh clone: `make run` (install, migrate, load the price book, start the
# web server with a Celery worker and beat) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format install clean

# Not an editable install: the project installs no package (manage.py runs the code from
# here), only its dependencies; setuptools' editable install warns about folders named like it.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_price_book
	$(PY) manage.py demo_setup
	$(PY) manage.py load_demo_data
	$(PY) manage.py bill --inline
	$(PY) manage.py serve

# Two processes by default (the CI machine has two cores); PYTEST_ARGS="-n 0" runs serially.
PYTEST_ARGS ?= -n 2
# Work stealing: pytest-django runs the transactional tests (browser, real workers) last, and
# with xdist's default `load` one worker ran that tail alone for ~3.7 minutes while the other
# idled. An idle worker now takes tests from the busy one's queue.
PYTEST_DIST ?= --dist worksteal
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_DIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) var
