"""Helpers of bench/inline.py; each side runs as `python -m bench._inline.<side>`."""
