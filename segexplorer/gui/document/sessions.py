"""Saving a document as a session file, and opening one (File > Save / Open Session).

Opening sets the choices, opens the image from the bytes in the file (or its path), and
once the prediction is there restores ablate mode at once and recomputes the ablation
history in one job (the sweep answers single segments when it exists), then shows the
entry that was on screen. The replay has a channel of its own: what the planner asks for
meanwhile (the ablated input of the canvas layer restored from the last run, a click)
must not replace it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from . import session_file
from .ablation import AblationEntry, Selection
from .ablation_entries import make_entry
from .jobtable import Job
from .keys import PredictKey
from .requests import WriteFile
from .runner import JobContext
from .session_file import SavedAblation, SessionFile
from .sources import ImageSource, bytes_source, file_source

if TYPE_CHECKING:
    from .document import Document

REPLAY_CHANNEL = "replay"  # dropped with the prediction (document.PREDICTION_CHANNELS)


@dataclass(frozen=True, eq=False)
class ReplayAblations:
    """A reopened session's ablations, recomputed in one job once it is predicted."""

    predict: PredictKey
    content: SessionFile
    channel: ClassVar[str] = REPLAY_CHANNEL

    @property
    def key(self) -> tuple[str, PredictKey]:
        return "replay", self.predict


def snapshot(doc: Document) -> SessionFile | None:
    """The document as a session file's content (None: no image is open)."""
    source = doc.image.source
    if source is None:
        return None
    if source.data is not None:
        data = source.data
    else:
        assert source.path is not None
        data = Path(source.path).read_bytes()
    return _content(doc, data)


def _content(doc: Document, data: bytes) -> SessionFile:
    source, ablation = doc.image.source, doc.ablation
    assert source is not None
    # drawn regions are not saved (their pixels are not in the file): segments are
    history = [e for e in ablation.history if not e.selection.kind.startswith("region")]
    shown = history.index(ablation.shown) if ablation.shown in history else None
    return SessionFile(
        image_name=source.label, image_path=source.path, image_bytes=data,
        model=doc.model.choice, analysis=doc.analysis.choice, view=doc.view.choice,
        canvas_layer=doc.layers.chosen, opacity=dict(doc.layers.opacity),
        outline=doc.layers.outline, target=doc.view.target, ablate_mode=ablation.active,
        ablation_view=ablation.view,
        history=tuple(SavedAblation(e.selection.kind, e.selection.baseline, e.selection.ids)
                      for e in history), shown=shown, comparison=doc.comparison.saved())


def digest(doc: Document) -> tuple[int, SessionFile] | None:
    """What a session file of the document would hold, without reading the image (its
    opening stands for it): equal digests, equal files."""
    source = doc.image.source
    return None if source is None else (source.key, _content(doc, b""))


def save(doc: Document, path: str | Path) -> None:
    """Write the session file (in a job: the image's bytes may be large)."""
    content = snapshot(doc)
    if content is None:
        return
    target = Path(path)

    def job(state: JobContext) -> Path:
        return write(target, content)

    doc.jobs.start(WriteFile(str(target), job, "Saving the session",  # type: ignore[arg-type]
                             lambda _p: f"Saved the session {target.name}"), force=True)


def save_now(doc: Document, path: str | Path) -> Path | None:
    """Write the session file on this thread (the window is closing: no job runs after)."""
    content = snapshot(doc)
    return None if content is None else write(Path(path), content)


def write(target: Path, content: SessionFile) -> Path:
    from ...export.atomic import write_text

    return write_text(target, session_file.to_json(content))


def open_session(doc: Document, path: str | Path) -> ImageSource:
    """Open a session file: choices now, the image next, the ablations after it is
    predicted (the image's source is returned). A file that is not a session is a
    one-line failure."""
    content = session_file.read(path)  # raises UserError: the window shows it
    with doc.updates.batch():
        doc.model.set(content.model)
        doc.analysis.set(content.analysis)
        doc.view.set(content.view)
        doc.layers.update(opacity={**doc.layers.opacity, **content.opacity},
                          outline=content.outline)
        doc.comparison.restore(content.comparison)  # B follows A's prediction
    path_ok = content.image_path is not None and Path(content.image_path).is_file() \
        and Path(content.image_path).read_bytes() == content.image_bytes
    source = (file_source(content.image_path) if path_ok and content.image_path
              else bytes_source(content.image_bytes, content.image_name))

    def on_predicted(key: PredictKey) -> None:
        if key.image.source != source.key:
            return
        doc.predicted.disconnect(on_predicted)
        _restore_views(doc, content)
        _replay(doc, content, key)

    doc.predicted.connect(on_predicted)
    doc.image.wanted = source
    return source


def _restore_views(doc: Document, content: SessionFile) -> None:
    if not content.ablate_mode:
        doc.layers.chosen = content.canvas_layer
    prediction = doc.store.prediction
    if content.target is not None and prediction is not None \
            and content.target < len(prediction.categories):
        doc.view.target = content.target


def _replay(doc: Document, content: SessionFile, key: PredictKey) -> None:
    """Ablate mode now; every saved ablation recomputed in one job, then the one that was
    shown is shown again."""
    if content.ablate_mode:
        doc.ablation.set_active(True)
        doc.ablation.view = content.ablation_view
    if not content.history:
        return
    if ReplayAblations not in doc.jobs.kinds():
        doc.jobs.register(ReplayAblations, lambda r: _replay_job(doc, r),
                          done=lambda r, entries: _replayed(doc, r, entries))
    doc.jobs.start(ReplayAblations(key, content), force=True)


def _replay_job(doc: Document, request: ReplayAblations) -> Job:
    session, prediction = doc.store.session, doc.store.prediction
    assert session is not None and prediction is not None
    history = request.content.history
    sweeps = {(a.kind, a.baseline): doc.store.sweep_for(a.kind, a.baseline) for a in history}

    def job(state: JobContext) -> list[AblationEntry]:
        entries, segments = [], {}
        for saved in history:
            sweep = sweeps[(saved.kind, saved.baseline)]
            if saved.kind not in segments:
                segments[saved.kind] = (sweep.segments if sweep is not None
                                        else prediction.segments(saved.kind))
            start = time.perf_counter()
            outcome = session.ablate(segments[saved.kind], saved.ids, baseline=saved.baseline,
                                     sweep=sweep, state=state)
            entries.append(make_entry(Selection(saved.kind, saved.baseline, saved.ids),
                                      segments[saved.kind], outcome, prediction,
                                      time.perf_counter() - start))
        return entries

    return Job(job, "Recomputing the ablations")


def _replayed(doc: Document, request: ReplayAblations, value: Any) -> None:
    if doc.store.predict_key != request.predict:
        return
    content = request.content
    entries = cast("list[AblationEntry]", value)
    ablation = doc.ablation
    ablation.adopt_history(entries)
    if not (content.ablate_mode and ablation.active and ablation.shown is None
            and content.shown is not None and content.shown < len(entries)):
        return  # the user has left ablate mode or clicked since: what they did stays
    shown = entries[content.shown].selection
    rows = [i for i, e in enumerate(ablation.history) if e.selection == shown]
    if rows:
        ablation.show_history(rows[0])
