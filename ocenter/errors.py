"""Domain errors that services raise; the API answers them as problem documents, pages as form errors."""


class DomainError(Exception):
    """A request that cannot be carried out as asked: says what to change.

    ``field`` names the input at fault, when one is; ``extra`` goes into the
    problem document as members (limits, what is used, what was asked).
    """

    status = 400
    title = "Invalid request"
    code = "invalid"

    def __init__(self, detail: str, *, field: str | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class Conflict(DomainError):
    """The request clashes with the current state (a duplicate, the last owner)."""

    status = 409
    title = "Conflict"
    code = "conflict"


class Unprocessable(DomainError):
    """Well formed, but it contradicts what was asked before (a used idempotency key with another request)."""

    status = 422
    title = "Unprocessable request"
    code = "unprocessable"


class Refused(DomainError):
    """Valid, but not allowed now: over a limit, a suspended tenant."""

    status = 403
    title = "Refused"
    code = "refused"
