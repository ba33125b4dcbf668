# Two commands for a fresh machine with Python 3.11 and make:
#   make run    virtualenv, install, migrate, demo data, then web + worker + beat + simulators
#   make test   the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export DEBUG ?= 1

.PHONY: run test install migrate demo bench lint format check-migrations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py seed_demo

run: export RECONCILE_EVERY_SECONDS ?= 60
run: export CARRIER_TRACKING_URL ?= http://127.0.0.1:8106
run: export TRACKING_POLL_MINUTES ?= 1
run: export TRACKING_TICK_SECONDS ?= 20
run: export DEFECTS_IMPORT_EVERY_SECONDS ?= 120
run: demo
	@echo ""
	@echo "  Admin:  http://127.0.0.1:$(PORT)/admin/"
	@echo "  Login:  demo / demo-password"
	@echo "  API:    http://127.0.0.1:$(PORT)/api/docs/"
	@echo "  Simulators: Amazon :8101, Shopify :8102, eBay :8103, Walmart :8104,"
	@echo "              3PL :8105, carrier tracking :8106"
	@echo ""
	PORT=$(PORT) $(BIN)/honcho start -f Procfile

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-migrations: install
	$(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf var/ staticfiles/
