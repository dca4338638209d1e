"""The starter: the ``billing`` command line (``python -m starter``), and only that.

``starter.cli`` parses (grammar in ``starter.arguments``) and dispatches; the account verbs live
in ``starter.verbs`` and ``starter.demo``, over ``starter.accounts`` (the CLI's adapter of
``client.AccountClient``) and ``starter.history`` (the event log). ``check`` is a verb over
``operations.reconcile``; ``up`` hands over to ``devstack.up``.
"""
