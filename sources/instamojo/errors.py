"""Errors that say which merchant, endpoint, record and field went wrong, and how to fix it;
and the redaction that keeps secrets out of every message and log line."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

_REDACTED = "***"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret (client secret, access or refresh token) so `redact` hides it anywhere.
    Called as soon as a secret enters the process: read from config or received from the API."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret, and anything shaped like a bearer header or an OAuth
    token field, with `***`."""
    if not text:
        return text
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    text = re.sub(r"(?i)(bearer\s+)[^\s'\",]+", r"\1" + _REDACTED, text)
    text = re.sub(
        r"(?i)((?:access_token|refresh_token|client_secret|code)[\"']?\s*[=:]\s*[\"']?)[^&\s'\",}]+",
        r"\1" + _REDACTED,
        text,
    )
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that runs `redact` over every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_redaction(loggers: Iterable[str] = ("", "dlt", "sources", "pipelines", "urllib3")) -> None:
    """Attach the redacting filter to the given loggers and to every handler of the root logger."""
    flt = RedactingFilter()
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(flt)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)


class InstamojoError(RuntimeError):
    """Base class: every message is redacted and names the merchant (and endpoint) involved."""

    def __init__(self, message: str, *, merchant: str | None = None, endpoint: str | None = None) -> None:
        self.merchant = merchant
        self.endpoint = endpoint
        where = ", ".join(
            part for part in (f"merchant {merchant!r}" if merchant else "", f"endpoint {endpoint}" if endpoint else "") if part
        )
        super().__init__(redact(f"{where}: {message}" if where else message))


class AuthError(InstamojoError):
    """The merchant's tokens were refused: the merchant is skipped until re-authorized.
    `oauth_error` is the token endpoint's error code when it answered one (`invalid_grant`)."""

    oauth_error: str | None = None


class ScopeError(InstamojoError):
    """The merchant did not grant the scope an endpoint needs: the resource is skipped."""

    def __init__(self, message: str, *, scope: str, merchant: str | None = None, endpoint: str | None = None) -> None:
        self.scope = scope
        super().__init__(message, merchant=merchant, endpoint=endpoint)


class ApiError(InstamojoError):
    """The API answered something unusable (after retries): an error status or a malformed page."""


class RecordError(InstamojoError):
    """One record is unusable: names the record id and the field."""

    def __init__(
        self, message: str, *, merchant: str | None, endpoint: str | None, record_id: object, field: str
    ) -> None:
        self.record_id = record_id
        self.field = field
        super().__init__(f"record {record_id!r}, field {field!r}: {message}", merchant=merchant, endpoint=endpoint)
