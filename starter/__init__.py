"""The starter: the ``billing`` command line (``python -m starter``) and the tools around it.

``starter.cli`` parses and dispatches; the account verbs live in ``starter.verbs`` and
``starter.demo``, over ``starter.accounts`` (Temporal) and ``starter.history`` (the event log).
"""
