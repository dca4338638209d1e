"""The pure core of the billing service: commands, events, the account, money. No I/O here.

``commands`` are what callers ask, ``events`` what the log records, ``account`` the state with
``decide`` and ``evolve``, ``memory`` the recent command ids it remembers, ``money`` amounts in
minor units per ISO 4217.
"""
