"""Domain errors. Services raise these; ``app.core.http_errors`` turns them into the contract's
error body in one place. Adapters (WAHA client, scheduler) subclass them so callers can map a
remote failure without knowing which adapter raised it."""

from __future__ import annotations


class WhagoError(Exception):
    status_code: int = 500
    code: str = "internal_error"
    default_detail: str = "Internal error."

    def __init__(self, detail: str | None = None, *, code: str | None = None, extra: object = None) -> None:
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        self.extra = extra
        super().__init__(self.detail)


class ValidationFailed(WhagoError):
    status_code = 400
    code = "validation_error"
    default_detail = "Validation failed."


class NotAuthenticated(WhagoError):
    status_code = 401
    code = "not_authenticated"
    default_detail = "Authentication required."


class Forbidden(WhagoError):
    status_code = 403
    code = "forbidden"
    default_detail = "You are not allowed to do this."


class NotFound(WhagoError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(WhagoError):
    status_code = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class PayloadTooLarge(WhagoError):
    status_code = 413
    code = "payload_too_large"
    default_detail = "Request body too large."


class RateLimited(WhagoError):
    status_code = 429
    code = "rate_limited"
    default_detail = "Too many attempts; try again later."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class DependencyUnavailable(WhagoError):
    """A remote dependency (database, Redis, scheduler, WAHA) is down; nothing was changed."""

    status_code = 503
    code = "dependency_unavailable"
    default_detail = "A dependency is unavailable; try again shortly."
