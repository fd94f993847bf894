"""Unsaved work: Save / Discard / Cancel when the window closes, and the autosave.

The document says what is unsaved and writes the autosave (``document.session_record``);
this is the window's side. The autosave lives in the user's state folder (platformdirs'
``user_state_dir``; ``SEGEXPLORER_STATE_DIR`` replaces it, as the tests do). Closing with
an answer (Save, Discard) or with nothing unsaved removes it; a file found at start is
work a crash or a kill left behind, and the window offers it back. A window that is not
interactive (scripts, screenshots) neither asks nor autosaves, nor does one whose
settings say ``session/autosave=false`` (the GUI tests that count jobs).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMainWindow

from .dialogs import Dialogs
from .document import Document
from .document.session_file import SUFFIX
from .document.session_record import SessionRecord

STATE_DIR_VARIABLE = "SEGEXPLORER_STATE_DIR"
AUTOSAVE_NAME = "autosave.segx"
AUTOSAVE_SETTING = "session/autosave"


def autosave_path() -> Path:
    folder = os.environ.get(STATE_DIR_VARIABLE)
    if not folder:
        from platformdirs import user_state_dir

        folder = user_state_dir("SegExplorer", appauthor=False)
    return Path(folder) / AUTOSAVE_NAME


class UnsavedWork:
    """Asks before unsaved work is closed; offers the autosave back at start."""

    def __init__(self, window: QMainWindow, doc: Document, record: SessionRecord,
                 dialogs: Dialogs,
                 export_folder: Callable[[], str],
                 show_error: Callable[[str], None], autosave: bool = True) -> None:
        self.window, self.doc, self.record, self.dialogs = window, doc, record, dialogs
        self.export_folder, self.show_error = export_folder, show_error
        self.decided = False  # the user answered Save or Discard: the window may close
        record.autosave = autosave_path() if dialogs.interactive and autosave else None

    # -- closing -------------------------------------------------------------------------
    def may_close(self) -> bool:
        """True: close now. False: the question is open (its answer closes the window)."""
        if self.decided or not self.dialogs.interactive or not self.record.unsaved():
            return True
        name = self.doc.image.source.label if self.doc.image.source is not None else ""
        self.dialogs.unsaved_work(
            f"Save the ablations of {name} before closing?",
            "They are not in a session file. Discard closes without them.", self._answered)
        return False

    def _answered(self, answer: str) -> None:
        if answer == "save" and not self._save():
            return
        if answer in ("save", "discard"):
            self.decided = True
            self.window.close()

    def _save(self) -> bool:
        record = self.record
        path = record.path
        if path is None:
            source = self.doc.image.source
            stem = Path(source.label).stem.strip("<>") if source is not None else ""
            chosen, _ = QFileDialog.getSaveFileName(
                self.window, "Save session", str(Path(self.export_folder())
                                                 / ((stem or "session") + SUFFIX)),
                f"SegExplorer sessions (*{SUFFIX})")
            if not chosen:
                return False
            path = Path(chosen if chosen.endswith(SUFFIX) else chosen + SUFFIX)
        try:
            record.save_now(path)
        except OSError as exc:
            self.show_error(f"The session could not be saved to {path} ({exc.strerror}): "
                            "choose another folder.")
            return False
        return True

    def closed(self) -> None:
        """The window is closed (its jobs are stopped) after Save or Discard, or with
        nothing unsaved: the autosave has nothing left to bring back."""
        self.record.remove_autosave()

    # -- starting ------------------------------------------------------------------------
    def offer_autosave(self) -> None:
        """A session left behind by a crash or a kill: offer it back."""
        path = self.record.autosave
        if path is None or not path.is_file() or not self.dialogs.interactive:
            return
        when = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        self.dialogs.restore_offer(
            f"Restore the session from {when}?",
            "SegExplorer closed without saving these ablations. Discard deletes them.",
            self._restore_answered)

    def _restore_answered(self, restore: bool) -> None:
        if restore:
            from ..engine.errors import UserError

            try:
                self.record.restore_autosave()
            except UserError as exc:
                self.show_error(exc.message)
        else:
            self.record.remove_autosave()


