"""What the Explanation panel and the Classes panel show: the explanation's status and
whether Compute can run, the target line, a warning about the chosen method, the Shapley
section, the layer field; the classes listed and the target chosen among them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...engine.methods import describe_images
from .ablation_entries import selection_label
from .canvas_view import layer_content, previewing, shown_attribution
from .choices import METHOD_LABELS
from .drawings import Attribution, Drawings
from .events import depends_on
from .formatting import format_shape
from .labels import (
    aggregation_labels,
    segment_labels,
    segments_kind_label,
    segments_tip,
    shares_note,
)
from .results import kind_of
from .states import DRAWING

if TYPE_CHECKING:
    from ...engine.results import Prediction
    from .document import Document

#: shown under the method list while Guided Grad-CAM is chosen (issue 14 measures it)
GUIDED_NOTE = ("Guided Grad-CAM is known to fail the randomisation sanity check (Adebayo "
               "et al., 2018): its maps can look the same for a model with random weights, "
               "showing the image's edges rather than what the model uses.")
#: a warning about a method, shown under the method list while it is chosen
METHOD_NOTES = {"guided_gradcam": GUIDED_NOTE}


@dataclass(frozen=True)
class ShapleyView:
    """The Shapley panel: each segment's value for the target, and the pairs of segments
    that interact most (the pairwise Shapley interaction index, exact only)."""

    heading: str  # e.g. "Shapley values for 'person' (exact: 2^5 coalitions)"
    values: tuple[tuple[str, float], ...]  # (segment label, value), largest |value| first
    pairs: tuple[tuple[str, float], ...]  # ('person + bicycle', index), largest |index| first
    pairs_note: str  # why there are no pairs (sampled), or how to read them


@dataclass(frozen=True, eq=False)
class ExplainView:
    status: str
    can_compute: bool
    target_html: str
    method_note: str  # a warning about the chosen method (Guided Grad-CAM's)
    shapley: ShapleyView | None  # with the Shapley method, once computed
    layer_text: str  # the layer in use: the chosen one, else the model's default
    layer_names: tuple[str, ...]  # what the layer field completes
    baselines: tuple[tuple[str, str], ...]  # (value, label): the engine's and the colours
    # (value, label) of each kind of segments: a multi-label model's are label sets
    segment_labels: tuple[tuple[str, str], ...] = ()
    segments_tip: str = ""  # which partition the segments are
    aggregation_labels: tuple[tuple[str, str], ...] = ()  # the score's, in the model's words


@dataclass(frozen=True, eq=False)
class ClassesView:
    classes: Prediction | None  # the classes listed (the preview's while it is shown)
    target: int | None  # the target shown (the preview's default while it is shown)
    colors: np.ndarray | None
    # a multi-label model: each class can be hidden (``hidden``), and the shares overlap
    toggles: bool = False
    hidden: frozenset[int] = frozenset()
    note: str = ""  # what the shares add up to, and the pixels in no class


def _plural(n: int, word: str, suffix: str = "es") -> str:
    return f"{n} {word}{suffix if n != 1 else ''}"


def _gradcam_done(doc: Document, result: Any) -> str:
    return (f"{METHOD_LABELS[doc.analysis.method]} at {result.layer} "
            f"({format_shape(result.activation_shape)}): "
            f"{_plural(len(result.raw), 'class')} from one pass, {result.seconds:.2f} s.")


def _sweep_done(doc: Document, sweep: Any) -> str:
    partition = (f" ({segments_kind_label(sweep.segments)})" if sweep.segments.label_sets
                 else "")
    return (f"Sweep: {sweep.segments.count} segments{partition}, "
            f"{describe_images(sweep.forward_passes)}, {sweep.seconds:.2f} s; serves every "
            "class.")


def _method_done(doc: Document, maps: Any) -> str:
    """In the words of its estimate and its progress (``engine.methods.describe_images``)."""
    return (f"{METHOD_LABELS[doc.analysis.method]}: "
            f"{describe_images(maps.forward, maps.backward)}, {maps.seconds:.2f} s "
            f"for {_plural(len(maps.maps), 'class')}.")


#: what each kind of result says once computed (``results.RESULT_KINDS``)
DONE_TEXT: dict[str, Callable[[Document, Any], str]] = {
    "gradcam": _gradcam_done, "sweep": _sweep_done, "method": _method_done}


def explain_status(doc: Document, drawings: Drawings) -> tuple[str, bool]:
    """The explanation's status line, and whether Compute has work to do."""
    return drawings.shared("explain_status", lambda: _explain_status(doc, drawings))


def _explain_status(doc: Document, drawings: Drawings) -> tuple[str, bool]:
    found = shown_attribution(doc, drawings)
    content = layer_content(doc, drawings, found)
    text = content.message or content.note
    store, predict = doc.store, doc.store.predict_key
    kind = kind_of(doc.analysis.method)
    result = store.result_for() if predict is not None else None
    if not text and result is not None:
        text = DONE_TEXT[kind.name](doc, result)
    if not text and isinstance(found, str):
        text = found
    if predict is None:
        stopped = [c for c in ("image", "model", "predict") if doc.jobs.is_blocked(c)]
        if stopped and not doc.jobs.busy():  # cancelled or failed: Compute retries it
            return ("The prediction was cancelled or failed. Press Compute to run it "
                    "again."), True
        return text, False
    return text, not doc.jobs.is_running(kind.channel) and result is None


def target_html(doc: Document, pred: Prediction | None, target: int | None) -> str:
    if pred is None or target is None:
        return "<b>Target:</b> none yet"
    rgb = (pred.colors[target] if pred is not doc.store.prediction
           else doc.store.class_colors()[target])
    colour = "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))
    return (f"<b>Target:</b> <span style='background:{colour}'>&nbsp;&nbsp;&nbsp;</span> "
            f"<b>{pred.categories[target]}</b> (class {target}, "
            f"{pred.share(target) * 100:.1f} % of pixels)")


@depends_on("results", "preview", "view.target", "model", "layers.hidden_classes")
def classes_view(doc: Document, drawings: Drawings) -> ClassesView:
    """The classes listed and the target (the preview's while it stands in); a
    multi-label model's classes each with a visibility toggle."""
    classes, target = doc.store.prediction, doc.view.target
    if previewing(doc) and doc.preview.result is not None:
        classes = doc.preview.result.prediction
        target = doc.preview.target(doc.view.target)
    if classes is None:
        return ClassesView(None, target, None)
    multilabel = classes.multilabel
    return ClassesView(classes, target, classes.colors, toggles=multilabel,
                       hidden=doc.layers.hidden_classes if multilabel else frozenset(),
                       note=shares_note(classes))


@depends_on("image", "model", "model_layers", "analysis", *DRAWING, "layers", "results",
            "jobs", "preview", "ablation.active", "ablation.view", "ablation.selection",
            "ablation.shown")
def explain_view(doc: Document, drawings: Drawings) -> ExplainView:
    status, can_compute = explain_status(doc, drawings)
    listed = classes_view(doc, drawings)
    return ExplainView(
        status=status, can_compute=can_compute,
        target_html=target_html(doc, listed.classes, listed.target),
        method_note=METHOD_NOTES.get(doc.analysis.method, ""),
        shapley=shapley_view(doc),
        layer_text=doc.analysis.layer or doc.model_layers.default(),
        layer_names=tuple(name for name, _kind in doc.model_layers.names()),
        baselines=doc.analysis.baselines(),
        segment_labels=tuple(segment_labels(multilabel(doc)).items()),
        segments_tip=segments_tip(multilabel(doc)) if multilabel(doc) else "",
        aggregation_labels=tuple(aggregation_labels(multilabel(doc)).items()))


def multilabel(doc: Document) -> bool:
    """Whether the model's classes are multi-label (the prediction's, else the loaded
    model's outputs)."""
    pred, model = doc.store.prediction, doc.model.loaded
    if pred is not None:
        return pred.multilabel
    return model is not None and model.multilabel


def shapley_view(doc: Document) -> ShapleyView | None:
    """The Shapley section, once the Shapley method's values are computed."""
    maps, pred, target = doc.store.method_for(), doc.store.prediction, doc.view.target
    if maps is None or maps.shapley is None or pred is None or target is None:
        return None
    table = maps.shapley
    segments = table.segments
    names = {s.id: selection_label(pred.categories, segments, (s.id,)) for s in segments.info}
    column = table.values[:, target]
    order = sorted(range(len(column)), key=lambda r: (-abs(float(column[r])), r))
    values = tuple((names[segments.info[r].id], float(column[r])) for r in order)
    pairs = tuple((f"{names[a]} + {names[b]}", v) for a, b, v in table.top_pairs(target, 5))
    if table.exact:
        note = ("Interaction > 0: the two segments matter more together than apart; "
                "< 0: either one is enough." if pairs else "No pair of segments interacts.")
    else:
        note = (f"Sampled ({table.n_samples} permutations): pair interactions need the "
                "exact values (fewer segments, or Shapley mode Exact).")
    heading = f"Shapley values for '{pred.categories[target]}' ({maps.detail})"
    return ShapleyView(heading, values, pairs, note)


__all__ = ["GUIDED_NOTE", "Attribution", "ClassesView", "ExplainView", "ShapleyView",
           "classes_view", "explain_status", "explain_view", "multilabel", "shapley_view",
           "target_html"]
