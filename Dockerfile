# syntax=docker/dockerfile:1
# One image for every Rateline process; the first argument picks it:
#   docker build -t rateline .
#   docker run rateline customer migrate
#   docker run rateline customer serve
# Configured only by environment variables (RATELINE_<SERVICE>_DATABASE_URL, ..._NATS_URL, ...).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# --- build: resolve exactly uv.lock into /app/.venv --------------------------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Third-party dependencies first: this layer is rebuilt only when the lock changes.
COPY uv.lock pyproject.toml ./
COPY libs/shared/pyproject.toml libs/shared/
COPY libs/rating/pyproject.toml libs/rating/
COPY libs/devstack/pyproject.toml libs/devstack/
COPY gateway/pyproject.toml gateway/
COPY services/customer/pyproject.toml services/customer/
COPY services/catalog/pyproject.toml services/catalog/
COPY services/usage/pyproject.toml services/usage/
COPY services/invoicing/pyproject.toml services/invoicing/
COPY services/payment/pyproject.toml services/payment/
COPY services/webhooks/pyproject.toml services/webhooks/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --all-packages --no-install-workspace
# Then our own packages, installed as wheels (not editable), so /src is not needed at runtime.
COPY libs libs
COPY gateway gateway
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --all-packages --no-editable

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 rateline \
 && useradd --system --uid 10001 --gid rateline --no-create-home --shell /usr/sbin/nologin rateline
COPY --from=build /app/.venv /app/.venv
COPY deploy/docker/entrypoint.sh /usr/local/bin/rateline
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /app
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/rateline"]
CMD ["gateway", "serve"]
