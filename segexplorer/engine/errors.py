"""Errors a user can act on.

Every failure that a user can cause (a bad file, an absent device, a wrong class name)
is raised as :class:`UserError` with a one-line message that says what was wrong and
what to do. The CLI prints it on stderr and exits non-zero; the GUI shows it in a
message box. Anything else is a bug.
"""

from __future__ import annotations

from os import PathLike


class UserError(Exception):
    """A problem with the user's input, with a one-line message meant for them."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's first line, short enough to go inside a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def check_input_file(path: str | PathLike[str], *, noun: str, what: str, pick: str, folder_hint: str,
                     empty_hint: str, display: str | None = None) -> None:
    """Refuse, with one line each, what cannot be a readable input file.

    ``noun`` names the file in messages ("Image"), ``what`` says what it should be
    ("an image"), ``pick`` what to choose instead ("an image file"). A pipe or a device
    is refused before opening: reading it could block or never end.
    """
    from pathlib import Path

    path = Path(path)
    name = display or str(path)
    try:
        if not path.exists():
            raise UserError(f"{noun} '{name}' does not exist: check the path.")
        if path.is_dir():
            raise UserError(f"'{name}' is a folder, not {what}: {folder_hint}.")
        if not path.is_file():
            raise UserError(f"'{name}' is not a regular file (a pipe or device): pick {pick}.")
        if path.stat().st_size == 0:
            raise UserError(f"{noun} '{name}' is empty (0 bytes): {empty_hint}.")
    except OSError as exc:  # a name too long, a path through a file ...
        raise UserError(f"{noun} '{name}' cannot be opened ({first_line(exc)}): "
                        "check the path.") from None


class Cancelled(Exception):
    """A job was cancelled cooperatively (between chunks of work)."""
