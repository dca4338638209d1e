# The billing worker, for docker-compose.yml. Untested: the project's machines have no Docker
# engine. `pip install .` brings the dependencies; the worker runs from the source in /app,
# next to migrations/, which `python worker.py --migrate` applies (the compose service `migrate`).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
RUN pip install . && useradd --system --no-create-home billing

USER billing
# worker.py stops gracefully on SIGTERM (what `docker compose stop` sends).
CMD ["python", "worker.py"]
