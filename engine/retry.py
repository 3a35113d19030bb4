"""Per-node retry policy. Attempts happen in-process before NodeFailed is appended."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 1
    initial_backoff_s: float = 0.1
    backoff_multiplier: float = 2.0
    max_backoff_s: float = 10.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    non_retryable: tuple[type[BaseException], ...] = ()

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        if attempt >= self.max_attempts or isinstance(error, self.non_retryable):
            return False
        return isinstance(error, self.retry_on)

    def backoff_s(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1`."""
        delay = self.initial_backoff_s * self.backoff_multiplier ** (attempt - 1)
        return float(min(delay, self.max_backoff_s))


NO_RETRY = RetryPolicy()
