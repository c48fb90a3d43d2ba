"""One error tree for everything monitor reports to a user.

    MonitorError
    ├── ConfigError(ValueError)   .path .line .col — printed FILE:LINE:COL: message
    │   └── ConfigErrors          several ConfigError at once (validation reports all)
    ├── FeedError                 .feed_id .url
    │   ├── FetchError            .status .retry_after .gone
    │   └── ParseError
    ├── StorageError
    │   └── StorageUnavailable    the database cannot be reached (down, gone, timed out)
    ├── NotifyError               .chat .retry_after .permanent
    └── TranslateError            .reason .backend .status .retry_after .backend_down

Third-party errors are translated once, at the I/O module that meets them, with
the original kept as ``__cause__``. Expected errors are data (recorded, backed
off, reported); anything else is a bug and propagates.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""


class ConfigError(MonitorError, ValueError):
    """A problem in a configuration file, located so the user can jump to it."""

    def __init__(self, message: str, path: str = "", line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if not self.path:
            return self.message
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class ConfigErrors(ConfigError):
    """Every problem found in one validation pass, in file order."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.path, e.line, e.col))
        first = self.errors[0] if self.errors else ConfigError("invalid configuration")
        super().__init__(first.message, first.path, first.line, first.col)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class FeedError(MonitorError):
    """A feed could not be fetched or understood this time."""

    def __init__(self, message: str, *, feed_id: str = "", url: str = "") -> None:
        super().__init__(message)
        self.feed_id = feed_id
        self.url = url


class FetchError(FeedError):
    """The HTTP (or file) fetch failed; ``retry_after`` in seconds when the server said."""

    def __init__(
        self,
        message: str,
        *,
        feed_id: str = "",
        url: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        gone: bool = False,
    ) -> None:
        super().__init__(message, feed_id=feed_id, url=url)
        self.status = status
        self.retry_after = retry_after
        self.gone = gone


class ParseError(FeedError):
    """The body is not a feed from which any entry could be recovered."""


class StorageError(MonitorError):
    """The state database refused or is unreachable."""


class StorageUnavailable(StorageError):
    """The state database cannot be reached now; trying again later may work."""


class NotifyError(MonitorError):
    """A message could not be delivered; ``permanent`` means retrying will not help."""

    def __init__(
        self,
        message: str,
        *,
        chat: str = "",
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(message)
        self.chat = chat
        self.retry_after = retry_after
        self.permanent = permanent


class TranslateError(MonitorError):
    """A translation could not be had this time; the alert goes out untranslated.

    ``reason`` is short and safe to show (never the key); ``retry_after`` is the
    server's wish in seconds (429); ``backend_down`` says whether the circuit
    breaker opened because of it.
    """

    def __init__(
        self,
        reason: str,
        *,
        backend: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        backend_down: bool = False,
    ) -> None:
        super().__init__(f"{backend}: {reason}" if backend else reason)
        self.reason = reason
        self.backend = backend
        self.status = status
        self.retry_after = retry_after
        self.backend_down = backend_down
