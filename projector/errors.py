"""Errors raised by the projector and its PostgreSQL read side.

    AmberError                         (engine.errors)
    └── ProjectorError
        ├── MigrationError             a migration failed, or the database is newer than this code
        ├── ProjectorBusyError         another projector of the same group holds its lock
        └── ProjectionStoreError       PostgreSQL failed; `retryable` says whether to try again
            └── SchemaMissingError     the projection tables do not exist (run `amber db migrate`)

Driver errors (psycopg) are translated into these once, at the boundary, with
the original chained as `__cause__`.
"""

from __future__ import annotations

from engine.errors import AmberError


class ProjectorError(AmberError):
    """Base of the projector's errors."""


class MigrationError(ProjectorError):
    """The schema could not be brought to the version this code expects."""


class ProjectorBusyError(ProjectorError):
    """Another projector instance of the group is running; two would interleave commits."""

    def __init__(self, group: str, holder: str) -> None:
        super().__init__(
            f"projector group {group!r} is already running ({holder}); "
            "stop it, or pass --wait-lock SECONDS to wait for it to exit")
        self.group = group
        self.holder = holder


class ProjectionStoreError(ProjectorError):
    """A PostgreSQL operation failed; retry only if `retryable`."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class SchemaMissingError(ProjectionStoreError):
    """The projection schema is absent: nothing was ever migrated into this database."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
