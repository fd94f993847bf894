"""Saving a document as a session file, and opening one (File > Save / Open Session).

Opening sets the choices, opens the image from the bytes in the file (or its path), and
once the prediction is there recomputes the ablation history in one job (the sweep
answers single segments when it exists), then shows the entry that was on screen.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from . import session_file
from .ablation import CHANNEL, AblationEntry, Selection, make_entry
from .messages import Saved
from .runner import JobContext
from .session_file import SavedAblation, SessionFile
from .sources import bytes_source, file_source

if TYPE_CHECKING:
    from .document import Document
    from .keys import PredictKey


def snapshot(doc: Document) -> SessionFile | None:
    """The document as a session file's content (None: no image is open)."""
    source, ablation = doc.source, doc.ablation
    if source is None:
        return None
    if source.data is not None:
        data = source.data
    else:
        assert source.path is not None
        data = Path(source.path).read_bytes()
    # drawn regions are not saved (their pixels are not in the file): segments are
    history = [e for e in ablation.history if not e.selection.kind.startswith("region")]
    shown = history.index(ablation.shown) if ablation.shown in history else None
    return SessionFile(
        image_name=source.label, image_path=source.path, image_bytes=data,
        model=doc.model_choice, analysis=doc.analysis, view=doc.view,
        canvas_layer=doc.canvas_layer, opacity=dict(doc.opacity), outline=doc.outline,
        target=doc.target, ablate_mode=ablation.active, ablation_view=ablation.view,
        history=tuple(SavedAblation(e.selection.kind, e.selection.baseline, e.selection.ids)
                      for e in history), shown=shown)


def save(doc: Document, path: str | Path) -> None:
    """Write the session file (in a job: the image's bytes may be large)."""
    content = snapshot(doc)
    if content is None:
        return
    target = Path(path)

    def job(state: JobContext) -> Path:
        from ...export.atomic import write_text

        return write_text(target, session_file.to_json(content))

    doc.submit("save_session", str(target), job,
               lambda p: doc.saved.emit(Saved(f"Saved the session {target.name}", target)),
               label="Saving the session", uses_model=False, force=True)


def open_session(doc: Document, path: str | Path) -> None:
    """Open a session file: choices now, the image next, the ablations after it is
    predicted. A file that is not a session is a one-line failure."""
    content = session_file.read(path)  # raises UserError: the window shows it
    doc.set_model_choice(content.model)
    doc.set_analysis(content.analysis)
    doc.set_view(content.view)
    doc.opacity.update(content.opacity)
    doc.set_outline(content.outline)
    doc.choices_changed.emit(None)
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
    doc.open_source(source)


def _restore_views(doc: Document, content: SessionFile) -> None:
    doc.set_canvas_layer(content.canvas_layer if not content.ablate_mode else doc.canvas_layer)
    if content.target is not None and doc.prediction is not None \
            and content.target < len(doc.prediction.categories):
        doc.set_target(content.target)


def _replay(doc: Document, content: SessionFile, key: PredictKey) -> None:
    """Recompute every saved ablation in one job, then show the one that was shown."""
    if not content.history:
        if content.ablate_mode:
            doc.ablation.set_active(True)
        return
    session, prediction = doc.session, doc.prediction
    assert session is not None and prediction is not None
    sweeps = {(a.kind, a.baseline): doc.sweep_for(a.kind, a.baseline) for a in content.history}

    def job(state: JobContext) -> list[AblationEntry]:
        from ...engine.segments import make_segments

        entries, segments = [], {}
        for saved in content.history:
            sweep = sweeps[(saved.kind, saved.baseline)]
            if saved.kind not in segments:
                segments[saved.kind] = (sweep.segments if sweep is not None
                                        else make_segments(prediction.class_map, saved.kind))
            start = time.perf_counter()
            outcome = session.ablate(segments[saved.kind], saved.ids, baseline=saved.baseline,
                                     sweep=sweep, state=state)
            entries.append(make_entry(Selection(saved.kind, saved.baseline, saved.ids),
                                      segments[saved.kind], outcome, prediction,
                                      time.perf_counter() - start))
        return entries

    def done(value: object) -> None:
        if doc.predict_key != key:
            return
        entries = cast("list[AblationEntry]", value)
        ablation = doc.ablation
        ablation.adopt_history(entries)
        if content.ablate_mode:
            ablation.set_active(True)
            ablation.view = content.ablation_view
            if content.shown is not None and content.shown < len(entries):
                ablation.show_history(content.shown)

    doc.submit(CHANNEL, ("replay", key), job, done, label="Recomputing the ablations",
               force=True)
