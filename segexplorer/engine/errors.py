"""Errors a user can act on.

Every failure that a user can cause (a bad file, an absent device, a wrong class name)
is raised as :class:`UserError` with a one-line message that says what was wrong and
what to do. The CLI prints it on stderr and exits non-zero; the GUI shows it in a
message box. Anything else is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, with a one-line message meant for them."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class Cancelled(Exception):
    """A job was cancelled cooperatively (between chunks of work)."""
