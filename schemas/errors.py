"""Errors raised by the schemas package.

    SchemaError                 anything wrong with bytes or schemas
    ├── DecodeError             bytes that are not a readable event
    │   ├── NotSingleObjectError   missing the C3 01 marker
    │   ├── UnknownSchemaError     fingerprint of no schema kept in schemas/
    │   └── TruncatedEventError    body shorter than its schema needs
    ├── EncodeError             a record that does not fit the current schema
    └── IncompatibleSchemaError a schema version the current reader cannot read
"""


class SchemaError(Exception):
    """Base of every error in this package."""


class DecodeError(SchemaError):
    """The bytes are not a readable Amber event."""


class NotSingleObjectError(DecodeError):
    """The bytes do not start with the Avro single-object marker C3 01."""


class UnknownSchemaError(DecodeError):
    """The writer schema's fingerprint matches no schema kept in schemas/."""

    def __init__(self, fingerprint: str) -> None:
        super().__init__(f"unknown writer schema fingerprint {fingerprint}")
        self.fingerprint = fingerprint


class TruncatedEventError(DecodeError):
    """The body ended before the writer schema was fully read."""


class EncodeError(SchemaError):
    """A record does not match the current event schema."""


class IncompatibleSchemaError(SchemaError):
    """A kept schema version cannot be read by the current reader schema."""
