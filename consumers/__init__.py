"""The outermost ring: the `amber` CLI, workers and the HTTP API (composition root)."""
