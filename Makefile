# Every target works from a clean clone: `make demo` (the stack plus a demo feed) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help install demo up down status logs feed lint fmt test test-unit test-component test-integration console-types screenshots

STACK := ./deploy/stack.sh
# Where the tests find the broker and database that `make test` starts (or that are already up).
TEST_ENV := CTE_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$${CTE_KAFKA_PORT:-9092} \
	CTE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$${CTE_PG_PORT:-5433}/postgres

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: ## Python packages (uv), PostgreSQL and chromium (Debian packages), the Kafka jars, the web console (npm)
	@$(STACK) install

demo: up feed ## the main job: the whole stack, then a demo feed through it

up: ## start Kafka, PostgreSQL, migrations, topics and the services (ready when it returns)
	@$(STACK) up

down: ## stop everything `make up` started
	@$(STACK) down

status: ## each component: up or down, pid, address
	@$(STACK) status

logs: ## recent logs of every component (make logs C=rule-engine to follow one)
	@$(STACK) logs $(C)

feed: ## stream demo indicators into the running API (COUNT=2000)
	@# The file gives defaults; what the environment already says wins, as in deploy/stack.sh.
	@given=$$(export -p); set -a; source $$( [ -f .env ] && echo .env || echo .env.example ); set +a; \
	eval "$$given"; uv run --frozen python deploy/demo/feed.py --count $${COUNT:-2000}

lint: install ## ruff, formatting and mypy (strict for libs/common); the console's TypeScript (tsc)
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy libs/common/src services/ingest-api/src services/rule-engine/src \
		services/netskope-sink/src services/ager/src tools/fake-tenant/src
	cd console && npm run --silent typecheck

screenshots: install ## the console's screenshots in docs/screenshots, taken by its browser test (starts and stops the stack)
	CTE_UPDATE_SCREENSHOTS=1 $(MAKE) test PYTEST_ARGS="tests/integration/test_console_browser.py"

console-types: ## after an API change: console/openapi.json from the app, then the console's types from it
	uv run --frozen python -m ingest_api.openapi_document > console/openapi.json
	cd console && npm run --silent api-types

fmt: ## format and autofix
	uv run --frozen ruff format .
	uv run --frozen ruff check --fix .

# pytest with the arguments given, against Kafka and PostgreSQL started here and stopped after.
with_stack = CTE_PG_FAST=1 $(STACK) up kafka postgres --owner test && \
	{ rc=0; $(TEST_ENV) uv run --frozen pytest $(1) || rc=$$?; $(STACK) down --owner test; exit $$rc; }

test: lint ## lint, then every test against a real Kafka and PostgreSQL (started and stopped here)
	@$(call with_stack,$(PYTEST_ARGS))

test-unit: ## the unit tests only (no broker, no database)
	uv run --frozen pytest tests/unit $(PYTEST_ARGS)

test-component: ## the component tests only: the API in process and the consumers' handlers called directly (seconds)
	@$(call with_stack,tests/component $(PYTEST_ARGS))

.PHONY: compose-check
compose-check: ## with a Docker engine: docker compose reads docker-compose.yml without complaint
	docker compose config -q

.PHONY: chaos
chaos: install ## crash suite at full size: 200,000 indicators, kills, broker/database restarts and SIGKILLs, cut connections (docs/RELIABILITY.md)
	CTE_CHAOS_INDICATORS=$${CTE_CHAOS_INDICATORS:-200000} CTE_CHAOS_ROUNDS=$${CTE_CHAOS_ROUNDS:-3} CTE_CHAOS_FAULTS=all \
		CTE_CHAOS_BATCH=$${CTE_CHAOS_BATCH:-1000} CTE_CHAOS_PACE=$${CTE_CHAOS_PACE:-0} CTE_CHAOS_TIMEOUT=$${CTE_CHAOS_TIMEOUT:-5400} \
		uv run --frozen pytest tests/chaos -s $(PYTEST_ARGS)

.PHONY: bench bench-quick
bench: ## benchmarks: baselines, the pipeline with 1,000,000 indicators, the read path (bench/results, docs/BENCHMARKS.md)
	uv run --frozen python bench/run.py --size 1000000

bench-quick: ## the same benchmarks with 100,000 indicators (well under 15 minutes)
	uv run --frozen python bench/run.py --size 100000
