"""The HTTP API (FastAPI): accounts over ``client.AccountClient`` and the event log.

``create_app`` (``app``) builds it; ``python -m gateway`` serves it alone (``__main__``);
``devstack.gateway.start_gateway`` runs it beside the worker. ``routes`` holds the routes,
``problems`` the error responses, ``upstream`` the Temporal and Postgres backends,
``settings`` the BILLING_HTTP_* knobs.
"""

from gateway.app import create_app

__all__ = ["create_app"]
