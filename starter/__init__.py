"""The starter: the ``billing`` command line (``python -m starter``) and the tools around it.

``starter.cli`` parses and dispatches; the account verbs live in ``starter.verbs`` and
``starter.demo``, over ``starter.accounts`` (the CLI's adapter of ``starter.client``, the one
client of the account workflows) and ``starter.history`` (the event log). ``starter.check`` is
the `check` verb over ``operations.reconcile``.
"""
