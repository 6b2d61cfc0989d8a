"""One retry policy for every remote call: bounded attempts, exponential backoff, jitter."""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Optional, TypeVar

from halo_lrg.config import RemoteConfig

T = TypeVar("T")

LOG = logging.getLogger("halo_lrg.io.retry")


class TransientError(Exception):
    """A fault worth retrying (5xx, 429, reset, short body). ``retry_after`` in seconds when
    the server said so."""

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def backoff_seconds(attempt: int, remote: RemoteConfig, rng: random.Random = random) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    ceiling = min(remote.backoff_max_seconds, remote.backoff_base_seconds * 2 ** (attempt - 1))
    return rng.uniform(0, ceiling)


def with_retries(call: Callable[[], T], remote: RemoteConfig, what: str,
                 on_retry: Optional[Callable[[str], None]] = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()`` until it succeeds, raises something permanent, or attempts run out.

    Only :class:`TransientError` is retried; after the last attempt it is re-raised with the
    attempt count in its message. Each retry is logged (WARNING, logger ``halo_lrg.io.retry``)
    with ``what``, the attempt that failed, the cause and the wait; ``on_retry`` hears it too.
    """
    attempt = 1
    while True:
        try:
            return call()
        except TransientError as exc:
            if attempt >= remote.max_attempts:
                raise TransientError(f"{exc} (gave up after {attempt} attempts)") from None
            wait = backoff_seconds(attempt, remote)
            if exc.retry_after is not None:
                wait = min(max(wait, exc.retry_after), remote.backoff_max_seconds)
            LOG.warning("%s: attempt %d of %d failed (%s); retrying in %.2f s",
                        what, attempt, remote.max_attempts, exc, wait)
            if on_retry is not None:
                on_retry(f"{what}: {exc}; retry {attempt}/{remote.max_attempts - 1} "
                         f"in {wait:.1f} s")
            sleep(wait)
            attempt += 1
