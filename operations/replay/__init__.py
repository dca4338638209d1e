"""Regenerating data from the log: a full replay into shadow tables (``rebuild``), a replay of
one account (``account``), a check that writes nothing (``verify``), snapshots rebuilt
(``snapshots``). Every one folds the log with the domain's own ``evolve``, through the
projections' own ``apply``."""
