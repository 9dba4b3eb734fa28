# One image for every service of the stack: docker-compose.yml picks the console script to run
# (cte-ingest-api, cte-rule-engine, cte-netskope-sink, cte-ager, cte-migrate, cte-topics,
# cte-fake-tenant).
#
#   docker build -t cte-exchange:local .
#
# Needs BuildKit (the default builder of current Docker and of `docker compose build`).

# ------------------------------------------------------------------ console: the web console's build
# Node is needed only here: the runtime serves the built files (the ingest-api at "/").
FROM node:20-slim AS console
WORKDIR /console
COPY console/package.json console/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY console/ ./
RUN npm run build

# ------------------------------------------------------------------ builder: resolve and install
FROM python:3.11-slim AS builder

# The uv that wrote uv.lock (keep in step with the developers' `uv --version`).
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore "uv==${UV_VERSION}"

# Install into /app/.venv with the image's own CPython (never a downloaded one); copy files instead
# of hard-linking from the cache mount; compile bytecode once here so the runtime never writes it.
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lockfile or a pyproject changes.
# Every workspace member's pyproject.toml is listed (tests/unit/test_compose.py checks the list).
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/ingest-api/pyproject.toml services/ingest-api/
COPY services/rule-engine/pyproject.toml services/rule-engine/
COPY services/netskope-sink/pyproject.toml services/netskope-sink/
COPY services/ager/pyproject.toml services/ager/
COPY tools/fake-tenant/pyproject.toml tools/fake-tenant/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --all-packages --no-dev --no-install-workspace

# Then the sources; the workspace members are installed as regular (non-editable) packages so the
# virtualenv alone is the application and the runtime stage needs nothing else from here.
COPY libs/ libs/
COPY services/ services/
COPY tools/ tools/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --all-packages --no-dev --no-editable

# ------------------------------------------------------------------ runtime
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 cte \
    && useradd --system --uid 10001 --gid cte --create-home --home-dir /home/cte \
        --shell /usr/sbin/nologin cte

# Owned by root, so the service user can run the code but not change it.
COPY --from=builder /app/.venv /app/.venv
COPY --from=console /console/dist /app/console

ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    CTE_CONSOLE_DIR=/app/console \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /app
USER cte:cte

# A default only: docker-compose.yml sets the command of every service.
CMD ["cte-ingest-api"]
