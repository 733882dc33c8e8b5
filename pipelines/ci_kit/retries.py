"""How reads of the index are retried: urllib3's own Retry, mounted on the one requests
session (index.py), except that a timeout is never retried. A maintained library's retry
rather than a loop of ours; only the timeout rule is ours."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _retry_class() -> type:
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ReadTimeoutError
    from urllib3.util.retry import Retry

    class NoRetryOnTimeout(Retry):
        """urllib3's Retry, except that a timeout ends the request at once, as it would
        without retries: a silent server answers no better the second time, and waiting
        again would multiply index-timeout (and the 10 s of connecting)."""

        def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[no-untyped-def]
            if isinstance(error, ReadTimeoutError):
                raise error
            if isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError):  # refused is retried
                raise MaxRetryError(_pool, url, error) from error
            return super().increment(method, url, response, error, _pool, _stacktrace)

    return NoRetryOnTimeout


def read_retries(**kw: Any) -> Any:
    """A Retry for the index's one session (index.py), made on first use: urllib3 is
    imported only when a request is made."""
    return _retry_class()(**kw)
