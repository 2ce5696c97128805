# `make run` and `make test` are the two commands a newcomer needs (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCHES := eventstore messaging fulfillment projections statements stock
PYTEST_ARGS ?=

.PHONY: install run test test-faults test-scale test-schema chaos chaos-smoke test-model test-stress lint check bench $(addprefix bench-,$(BENCHES)) clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runplatform

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The deployment as separate processes, stopped, killed and raced (PostgreSQL and RabbitMQ
# from DATABASE_URL and CELERY_BROKER_URL; a few minutes).
test-faults: install
	$(BIN)/python -m pytest -m faults -s tests/e2e/test_saga_faults.py $(PYTEST_ARGS)

# Two copies of each process of the deployment (consumers, worker, relay, projector, saga
# timers) under the chaos traffic, the leading relay killed halfway; no duplicate effect, no
# stall (tests/e2e/test_scale_out.py; SCALE_ORDERS=40, about a minute).
test-scale: install
	$(BIN)/python -m pytest -m scale -s tests/e2e/test_scale_out.py $(PYTEST_ARGS)

# The fault harness (tests/e2e/test_chaos.py): each fault injected into the deployment's
# processes under a mix of orders, proven, restored, then verify_consistency; one line of
# figures per scenario. Full size: 20 orders after each fault, 30 s outages.
chaos: install
	$(BIN)/python -m pytest -m chaos -s tests/e2e/test_chaos.py $(PYTEST_ARGS)

# The same scenarios at a size CI can afford (about 5 minutes).
chaos-smoke: install
	CHAOS_ORDERS=$${CHAOS_ORDERS:-4} CHAOS_OUTAGE_SECONDS=$${CHAOS_OUTAGE_SECONDS:-10} \
	  $(BIN)/python -m pytest -m chaos -s tests/e2e/test_chaos.py $(PYTEST_ARGS)
# The API against its OpenAPI document: schemathesis, every check and phase, on a running
# platform (seeded and bounded; a few minutes).
test-schema: install
	$(BIN)/python -m pytest -m schema -s tests/e2e/test_openapi_conformance.py $(PYTEST_ARGS)

# The suite while two busy loops keep both cores loaded (tracked by pid, ended on exit):
# a test whose outcome depends on the machine's speed fails here first.
test-stress: install
	@bash -c 'pids=(); for n in 1 2; do $(BIN)/python -c "while True: pass" & pids+=($$!); done; \
	  trap "kill $${pids[*]} 2>/dev/null" EXIT; \
	  echo "load: pids $${pids[*]}"; $(BIN)/python -m pytest $(PYTEST_ARGS)'

# The saga's model-based test exploring new interleavings (the default run replays a fixed set).
test-model: install
	SAGA_MODEL_EXPLORE=1 SAGA_MODEL_EXAMPLES=$${SAGA_MODEL_EXAMPLES:-3000} \
	  $(BIN)/python -m pytest tests/platform_core/sagas/test_saga_model.py $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

check: install
	@mkdir -p var
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

bench: $(addprefix bench-,$(BENCHES))

$(addprefix bench-,$(BENCHES)): bench-%: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/$*.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
