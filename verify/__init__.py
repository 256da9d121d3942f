"""Fixity sweeps, reconciliation, case replay and evidence packages."""
