"""DBE error codes (docs/dbe.md §9) as exceptions."""

from __future__ import annotations


class DBEError(Exception):
    """A DBE error: an ERROR frame from the router, or a frame libdbe refused.

    ``code`` is the error code's name (``POLICY_DENIED``, ...), ``message``
    the text, ``param`` the request field at fault, ``rule`` the policy rule
    that decided, ``retry_after`` seconds to wait (rate limits, overload).
    """

    code = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None, param: str = "", rule: str = "", retry_after_ms: int = 0, reason: str = ""):
        super().__init__(message)
        if code:
            self.code = code
        self.message, self.param, self.rule, self.reason = message, param, rule, reason
        self.retry_after = retry_after_ms / 1000 if retry_after_ms else None

    def __str__(self) -> str:
        s = f"{self.code}: {self.message}"
        if self.rule:
            s += f" (rule {self.rule})"
        return s


def _sub(name: str, code: str, *bases: type) -> type:
    return type(name, (DBEError, *bases), {"code": code, "__doc__": f"DBE error {code}."})


MalformedFrame = _sub("MalformedFrame", "MALFORMED_FRAME", ValueError)
UnsupportedVersion = _sub("UnsupportedVersion", "UNSUPPORTED_VERSION", ValueError)
FrameTooLarge = _sub("FrameTooLarge", "FRAME_TOO_LARGE", ValueError)
UnknownMsgType = _sub("UnknownMsgType", "UNKNOWN_MSG_TYPE", ValueError)
InvalidRequest = _sub("InvalidRequest", "INVALID_REQUEST", ValueError)
Unauthenticated = _sub("Unauthenticated", "UNAUTHENTICATED", PermissionError)
ClaimInvalid = _sub("ClaimInvalid", "CLAIM_TOKEN_INVALID", PermissionError)
PolicyDenied = _sub("PolicyDenied", "POLICY_DENIED", PermissionError)
RateLimited = _sub("RateLimited", "RATE_LIMITED")
NotFound = _sub("NotFound", "NOT_FOUND", LookupError)
NoWorkerAvailable = _sub("NoWorkerAvailable", "NO_WORKER_AVAILABLE")
Overloaded = _sub("Overloaded", "OVERLOADED")
DeadlineExceeded = _sub("DeadlineExceeded", "DEADLINE_EXCEEDED", TimeoutError)
Cancelled = _sub("Cancelled", "CANCELLED")
WorkerFailed = _sub("WorkerFailed", "WORKER_FAILED")
Internal = _sub("Internal", "INTERNAL")
Unavailable = _sub("Unavailable", "UNAVAILABLE", ConnectionError)

_by_code = {c.code: c for c in (MalformedFrame, UnsupportedVersion, FrameTooLarge, UnknownMsgType, InvalidRequest,
                                Unauthenticated, ClaimInvalid, PolicyDenied, RateLimited, NotFound, NoWorkerAvailable,
                                Overloaded, DeadlineExceeded, Cancelled, WorkerFailed, Internal, Unavailable)}


def from_json(e: dict) -> DBEError:
    """The exception for libdbe's error object."""
    cls = _by_code.get(e.get("code", ""), DBEError)
    return cls(e.get("message", ""), code=e.get("code"), param=e.get("param", ""), rule=e.get("rule", ""),
               retry_after_ms=e.get("retry_after_ms", 0), reason=e.get("reason", ""))


__all__ = ["DBEError", "from_json"] + [c.__name__ for c in _by_code.values()]
