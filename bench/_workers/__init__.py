"""Helpers of bench/workers.py: graphs, the stack, the probed worker, the LangGraph peer."""
