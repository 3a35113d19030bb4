"""Compiled graphs the CLI tests name as MODULE:ATTR (`amber start|resume|replay --graph`).

A module of their own, so that the unit tests importing tests.engine_graphs do
not compile them.
"""

from __future__ import annotations

from tests.engine_graphs import approval_graph

doc_approval = approval_graph(interrupt_before=["review"])
doc_approval_today = approval_graph(interrupt_before=["review"], publishes=False)  # a later version
