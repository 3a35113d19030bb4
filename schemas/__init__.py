"""Avro schemas of the Amber event envelope and the codec that reads every version.

This package imports nothing of Amber: it is the innermost ring.
"""

from schemas.codec import EventCodec, default_codec
from schemas.errors import SchemaError, TruncatedEventError, UnknownSchemaError

__all__ = [
    "EventCodec",
    "SchemaError",
    "TruncatedEventError",
    "UnknownSchemaError",
    "default_codec",
]
