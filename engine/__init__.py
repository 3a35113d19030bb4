"""Amber's engine: the pure ledger core, the graph API, the runner and the ports it needs."""
