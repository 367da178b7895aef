"""The typed errors of the core. The CLI turns each into one line on stderr and an exit code;
the server turns each into an HTTP status."""


class TracklyError(Exception):
    """A mistake in what the user asked for, explained in one line."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # the input it is about, where one is (the API's error names it)

    def __str__(self) -> str:
        return self.message


class InvalidInput(TracklyError):
    """A value that cannot be used: a bad URL, hostname, amount, date…"""

    http_status = 400


class DatabaseUnavailable(TracklyError):
    """The database server cannot be reached (PostgreSQL down or restarting)."""

    http_status = 503


class NotFound(TracklyError):
    """A name or id that does not exist (in this account)."""

    http_status = 404


class Conflict(TracklyError):
    """Something that would break a uniqueness rule or an existing relationship."""

    http_status = 409


class Unauthorized(TracklyError):
    """No credentials, or credentials that are wrong or revoked (an API key)."""

    http_status = 401


class Forbidden(TracklyError):
    """A missing or wrong secret, or an address that is not allowed."""

    http_status = 403


class TooMany(TracklyError):
    """More of something than a limit allows in a while (a link's conversions in an hour)."""

    http_status = 429


class Interrupted(TracklyError):
    """Ctrl-C during a job that keeps what it committed, with what to do next."""

    exit_code = 130
    http_status = 503


class Problems(InvalidInput):
    """Several problems found at once, reported together before anything is written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(message)


class DatabaseVersionError(TracklyError):
    """The database and the code disagree about the schema."""
