"""User-facing errors.

Anything a user can cause (a bad config value, a missing file, a corrupt
artifact) raises `UserError`. The CLI prints its message on one line and exits
with status 2; tracebacks are shown only with `--verbose`.
"""


class UserError(Exception):
    """An error caused by input the user controls; the message names the problem."""


def require(condition: bool, message: str) -> None:
    """Raises `UserError(message)` unless `condition` holds."""
    if not condition:
        raise UserError(message)
