"""Whether the work on screen is in a session file, and the autosave that keeps it until
it is.

Work is *unsaved* when ablations were computed (the session's history) and the session
file last saved or opened does not hold what is on screen. After every completed change
of unsaved work the whole session is written to the autosave file (a job on its own
channel: a newer state replaces a write that has not started); the window removes the
file when it closes with the user's answer (Save or Discard), so a file found at start
is work that a crash or a kill left behind, offered back ("Restore the session from
...?"). docs/sessions.md says it from the user's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from . import sessions
from .jobtable import Job
from .messages import Notice, Saved
from .runner import JobContext
from .session_file import SessionFile

if TYPE_CHECKING:
    from .document import Document
    from .sources import ImageSource



@dataclass(frozen=True, eq=False)
class WriteAutosave:
    """The session written to the autosave file (silently)."""

    path: Path
    content: SessionFile
    channel: ClassVar[str] = "autosave"

    @property
    def key(self) -> tuple[str, int]:  # each state is written, even to the same file
        return "autosave", id(self)


class SessionRecord:
    """The session file the work is in (if any), and the autosave of what is not."""

    def __init__(self, doc: Document, autosave: Path | None = None) -> None:
        self.doc = doc
        #: where unsaved work is written after each change (None: nowhere)
        self.autosave = autosave
        #: the session file last saved or opened: Save at closing writes it again
        self.path: Path | None = None
        self._saved: object = None  # the digest of what that file holds
        self._written: object = None  # the digest the autosave file holds
        self._opening: ImageSource | None = None  # a session whose ablations come back
        self._pending: dict[Path, object] = {}  # saves on their way
        doc.jobs.register(WriteAutosave, self._autosave_job, failed=self._autosave_failed,
                          cancelled=self._autosave_cancelled)
        doc.updates.announced.connect(self._on_announced)
        doc.saved.connect(self._on_saved)

    # -- what is on screen and in files --------------------------------------------------
    def unsaved(self) -> bool:
        """Ablations are on screen that no session file holds."""
        if self._opening is not None:
            return False
        now = sessions.digest(self.doc)
        return now is not None and bool(now[1].history) and now != self._saved

    def save(self, path: str | Path) -> None:
        """File > Save Session (a job); the work counts as saved once it is written."""
        self._pending[Path(path)] = sessions.digest(self.doc)
        sessions.save(self.doc, path)

    def save_now(self, path: str | Path) -> Path | None:
        """Save on this thread (the window is closing). OSError: not written."""
        written = sessions.save_now(self.doc, path)
        if written is not None:
            self.path, self._saved = Path(path), sessions.digest(self.doc)
        return written

    def open(self, path: str | Path) -> None:
        """File > Open Session: what it holds counts as saved once its ablations are back."""
        self._opening = sessions.open_session(self.doc, path)
        self.path = Path(path)

    def restore_autosave(self) -> None:
        """Open the autosave file: its work is unsaved (no file of the user's holds it)."""
        assert self.autosave is not None
        sessions.open_session(self.doc, self.autosave)
        self.path, self._saved, self._opening = None, None, None

    def remove_autosave(self) -> None:
        self.doc.jobs.cancel(WriteAutosave.channel)
        if self.autosave is not None:
            self.autosave.unlink(missing_ok=True)
        self._written = None

    # -- reacting ------------------------------------------------------------------------
    def _on_saved(self, saved: Saved) -> None:
        if saved.path in self._pending:
            self._saved = self._pending.pop(saved.path)
            self.path = saved.path
            self._on_announced(frozenset())

    def _on_announced(self, _topics: frozenset[str]) -> None:
        doc = self.doc
        if doc.closing:
            return
        if self._opening is not None:
            source, predict = doc.image.source, doc.store.predict_key
            if source is None or source.key != self._opening.key:
                if doc.image.wanted is None or doc.image.wanted.key != self._opening.key:
                    self._opening = None  # another image was opened instead
                return
            if predict is None or predict.image.source != source.key \
                    or doc.jobs.is_running(sessions.REPLAY_CHANNEL):
                return
            self._opening, self._saved = None, sessions.digest(doc)
        if self.autosave is None:
            return
        if not self.unsaved():
            if self._written is not None:
                self.remove_autosave()  # saved: nothing to bring back
            return
        now = sessions.digest(doc)
        if now == self._written:
            return
        content = sessions.snapshot(doc)
        if content is not None:
            self._written = now
            doc.jobs.start(WriteAutosave(self.autosave, content), force=True)

    def _autosave_job(self, request: WriteAutosave) -> Job:
        def job(state: JobContext) -> Path:
            request.path.parent.mkdir(parents=True, exist_ok=True)
            return sessions.write(request.path, request.content)

        return Job(job, "Autosaving the session", uses_model=False)

    def _autosave_cancelled(self, request: WriteAutosave) -> None:
        self._written = None  # (Esc): written again after the next change

    def _autosave_failed(self, request: WriteAutosave, message: str, details: str) -> bool:
        self._written = None
        self.doc.notice.emit(Notice(f"The session could not be autosaved: {message}", 8000))
        return True
