# The service's image, for docker-compose.yml: one image, four commands, the ones the tests run:
#
#   python worker.py --migrate    python worker.py    python -m gateway    python -m relay
#
# (and `python -m starter ...`, the CLI, for `docker compose exec`). The code runs from /app,
# beside migrations/, installed in editable mode so that every entry point (`billing` too)
# imports the same files. It runs as an unprivileged user that can write nothing in /app.
# Not built on the project's machines (no Docker engine): scripts/compose-smoke.sh builds and
# runs it where there is one. The Python minor version is the one the tests run on.
FROM python:3.11.17-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install --no-deps -e . \
    && python -m compileall -q /app \
    && useradd --system --no-create-home --shell /usr/sbin/nologin billing

USER billing
# worker.py, the gateway and the relay stop gracefully on SIGTERM (what `docker compose stop`
# sends). The compose file names each service's command; this is the worker's.
CMD ["python", "worker.py"]
