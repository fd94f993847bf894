"""What the canvas area shows, as one value: the layer bar, the canvas (the image, the
chosen layer over it, the layers under it, the outline), the footer (colour bar, legend
or a message) and the side-by-side panels.

:func:`attribution` is the map the explanation layer shows (also drawn by the figure
export); which result it reads is a lookup on the method's kind of result
(``results.RESULT_KINDS``). Drawings are kept in :class:`Drawings` (a view option redraws
at once; the same key gives the same array, so the canvas skips unchanged pixmaps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ...engine.methods import get_method
from ...render import VIEW_AFTER
from ...render.normalize import NormalizedAttr
from .ablation_entries import HINT as ABLATE_HINT
from .ablation_entries import VIEW_LABELS as ABLATION_VIEW_LABELS
from .choices import (
    ABLATED,
    ATTRIBUTION,
    COLORMAP_VIEWS,
    IMAGE,
    LAYER_LABELS,
    METHOD_LABELS,
    SEGMENTATION,
    SIGN_LABELS,
    VIEW_LABELS,
    view_for_sign,
)
from .drawings import Attribution, Drawings
from .estimates import estimate_method
from .events import depends_on
from .formatting import format_shape, format_value
from .labels import LegendEntry, aggregation_short, legend_entries, segments_kind_label
from .results import ablated_key, kind_of
from .states import DRAWING

if TYPE_CHECKING:
    from .document import Document

T = TypeVar("T")
RENDER_CACHE_SIZE = 24
HOVER_HINT = "Hover over the image to read a pixel's class and score; click to explain it."
NO_IMAGE = "Open an image."


@dataclass(frozen=True, eq=False)
class Panel:
    """One side-by-side panel (Captum's visualize_image_attr_multiple)."""

    title: str
    rgba: np.ndarray  # H x W x 3|4 uint8
    normalized: NormalizedAttr | None = None  # None: no colour bar (the original image)
    colormap: str | None = None  # the colour bar's map (None: Captum's for the sign)


@dataclass(frozen=True, eq=False)
class CanvasView:
    base: np.ndarray | None  # the image at its own resolution (H x W x 3)
    working: np.ndarray | None  # the image at the working resolution: the overlays' grid
    overlay: np.ndarray | None  # H x W x 3|4, drawn at ``opacity`` over the base
    opacity: float
    base_visible: bool
    under: tuple[tuple[np.ndarray, float], ...]  # other visible layers, below the overlay
    outline: np.ndarray | None  # RGBA, drawn on top
    outline_key: object  # equal keys: the same outline


@dataclass(frozen=True, eq=False)
class FooterView:
    kind: str  # 'colorbar', 'legend' or 'message'
    normalized: NormalizedAttr | None
    colormap: str | None  # the colour bar's map (None: Captum's for the sign)
    caption: str  # the colour bar's units, or the message
    legend: tuple[LegendEntry, ...] = ()  # multi-label: shares, and toggles per class


@dataclass(frozen=True, eq=False)
class CanvasAreaView:
    """The canvas area: the untrained banner, the layer bar, the canvas or the panels,
    the footer."""

    untrained: bool
    chosen: str  # the layer on top
    layer_labels: dict[str, str]  # the ablated layer is named after the view it shows
    layer_enabled: dict[str, bool]
    opacity_enabled: bool
    canvas: CanvasView
    footer: FooterView
    side_by_side: bool
    panels: tuple[Panel, ...]
    panels_message: str
    previewing: bool  # a quick look: display only (no hover scores, no exports)
    message: str  # why no explanation is drawn ('' when one is)
    hint: str = ""  # the model's outputs look otherwise (Prediction.hint), until dismissed
    comparing: bool = False  # the comparison's split view replaces the canvas


# ======================================================================= the map shown
def missing(doc: Document, channel: str, what: str) -> str:
    """Why a result is not there: on its way, stopped, or not asked for."""
    if doc.jobs.is_running(channel):
        return f"{what} is being computed..."
    if doc.jobs.is_blocked(channel):
        return f"{what} was cancelled or failed. Press Compute to run it."
    return f"{what} has not been computed. Press Compute."


def _method_missing(doc: Document, label: str) -> str:
    estimate = estimate_method(doc.store, doc.analysis.choice, doc.analysis.auto_run_seconds)
    if not doc.jobs.is_running("method") and not doc.jobs.is_blocked("method") \
            and estimate is not None and not estimate.automatic and estimate.seconds is not None:
        return (f"{label} for every class needs {estimate.describe()}. Press Compute to "
                "run it.")
    return missing(doc, "method", label)


def _gradcam_map(doc: Document, result: Any, key: Any, target: int | None, name: str,
                 hide: bool) -> Attribution | str:
    if result is None:
        return missing(doc, "gradcam", "Grad-CAM")
    shape = format_shape(result.activation_shape)
    if not get_method(doc.analysis.method).per_class:  # the layer's activation
        return Attribution(result.activation_upsampled,
                           f"Mean activation of {result.layer} ({shape}) over channels, "
                           "upsampled bilinear", (key, "activation", target if hide else None,
                                                  hide))
    if target not in result.upsampled:
        return f"No Grad-CAM for '{name}': it is not predicted in this image."
    return Attribution(result.upsampled[target],
                       f"Grad-CAM of '{name}' at {result.layer} ({shape}), "
                       f"{_short(doc, result.aggregation)}", (key, "gradcam", target, hide))


def _sweep_map(doc: Document, sweep: Any, key: Any, target: int | None, name: str,
               hide: bool) -> Attribution | str:
    if sweep is None:
        return missing(doc, "sweep", "The ablation sweep")
    assert target is not None
    segments = sweep.segments
    partition = f" {segments_kind_label(segments)}" if segments.label_sets else ""
    return Attribution(sweep.attribution_map(target),
                       f"Drop in the '{name}' score when each segment is replaced by the "
                       f"{sweep.baseline} baseline ({segments.count} segments{partition})",
                       (key, "ablation", target, hide))


def _method_map(doc: Document, maps: Any, key: Any, target: int | None, name: str,
                hide: bool) -> Attribution | str:
    choice = doc.analysis
    label = METHOD_LABELS[choice.method]
    if maps is None:
        return _method_missing(doc, label)
    if target not in maps.maps:
        return f"No {label} for '{name}': it is not predicted in this image."
    where = f" at {maps.layer}" if maps.layer else ""
    return Attribution(maps.maps[target],
                       f"{label} of '{name}'{where}, {_short(doc, choice.aggregation)}"
                       + (f" ({maps.detail})" if maps.detail else ""),
                       (key, choice.method, target, hide))


def _short(doc: Document, aggregation: str) -> str:
    pred = doc.store.prediction
    return aggregation_short(aggregation, pred is not None and pred.multilabel)


#: each kind of result's map for the target (``results.RESULT_KINDS``)
MAP_OF: dict[str, Callable[..., Attribution | str]] = {
    "gradcam": _gradcam_map, "sweep": _sweep_map, "method": _method_map}


NO_MODEL = ("No model is loaded: choose the model or its weights in the Model panel, or "
            "press Compute (Ctrl+R) to try again.")


def waiting_text(doc: Document) -> str:
    """Why there is no prediction yet: it is on its way, or the model was not loaded
    (refused, or its weights were not offered: nothing is on its way)."""
    if doc.model.loaded_key != doc.model.choice.key and doc.jobs.is_blocked("model"):
        return NO_MODEL
    return "Waiting for the model's prediction."


def attribution(doc: Document) -> Attribution | str:
    """The map the explanation layer shows, or why there is none."""
    store = doc.store
    pred, predict = store.prediction, store.predict_key
    if doc.image.prepared is None:
        return NO_IMAGE
    if pred is None or predict is None:
        return waiting_text(doc)
    method, target = doc.analysis.method, doc.view.target
    if target is None and get_method(method).per_class:
        return "Pick a target class in the Classes panel or on the image."
    name = pred.categories[target] if target is not None else "?"
    hide = doc.view.hide_target and target is not None
    key = store.key_for()
    assert key is not None
    found = MAP_OF[kind_of(method).name](doc, store.get(key), key, target, name, hide)
    if isinstance(found, str) or not hide or target is None:
        return found
    from ...render import hide_target

    return Attribution(hide_target(found.values, pred.mask(target)),
                       found.caption + "; target segment hidden", found.key)


def previewing(doc: Document) -> bool:
    prepared = doc.image.prepared
    return doc.preview.showing(doc.store.prediction is not None,
                               prepared.size if prepared is not None else None)


def shown_attribution(doc: Document, drawings: Drawings | None = None) -> Attribution | str:
    """The map shown: the preview's while it stands in for the full result."""
    if drawings is not None:
        return drawings.shared("attribution", lambda: shown_attribution(doc))
    found = attribution(doc)
    prepared = doc.image.prepared
    if previewing(doc) and prepared is not None and doc.preview.result is not None:
        quick = doc.preview.attribution(doc.analysis.choice, doc.view.target,
                                        doc.view.hide_target, prepared.shape)
        if quick is not None:
            return Attribution(quick.attr, quick.caption, quick.key)
    return found


def describe_pixel(doc: Document, drawings: Drawings, x: int, y: int) -> str:
    """The status-bar text for image pixel (x, y) ((-1, -1): off the image)."""
    prepared = doc.image.prepared
    if prepared is None:
        return ""
    height, width = prepared.shape
    if not (0 <= x < width and 0 <= y < height):  # off the image at this working size
        return ABLATE_HINT if doc.ablation.active else HOVER_HINT
    sx, sy = prepared.scale
    text = f"x {x}, y {y}  (original {x / sx:.0f}, {y / sy:.0f})"
    pred = doc.store.prediction
    if pred is not None and pred.class_map.shape == prepared.shape:
        present = pred.describe_pixel(x, y)  # several, or none, for a multi-label model
        for cls, score, prob in present:
            text += f"   {pred.categories[cls]}: score {score:.3g}, p {prob * 100:.0f} %"
        if not present:
            text += "   no class"
    attr = drawings.current_attr
    if doc.layers.chosen == ATTRIBUTION and attr is not None and attr.shape == prepared.shape:
        text += f"   attribution {format_value(float(attr[y, x]))}"
    return text


# ======================================================================= the canvas area
@dataclass(frozen=True, eq=False)
class LayerContent:
    """What the chosen layer draws, and the message when it draws nothing."""

    overlay: np.ndarray | None
    normalized: NormalizedAttr | None
    caption: str  # the colour bar's caption
    message: str  # why nothing is drawn (the preview's note first)
    previewing: bool
    note: str  # the preview's note
    segmap: np.ndarray | None


def layer_content(doc: Document, drawings: Drawings, found: Attribution | str
                  ) -> LayerContent:
    """The chosen layer's drawing (``drawings.current_attr``: the map under the cursor)."""
    return drawings.shared("layer_content", lambda: _layer_content(doc, drawings, found))


def _layer_content(doc: Document, drawings: Drawings, found: Attribution | str
                   ) -> LayerContent:
    drawings.follow(doc)
    pred, prepared, layer = doc.store.prediction, doc.image.prepared, doc.layers.chosen
    overlay: np.ndarray | None = None
    normalized: NormalizedAttr | None = None
    caption = message = note = ""
    drawings.current_attr = None
    quick = previewing(doc)
    segmap = drawings.segmap(doc)
    if quick and prepared is not None and doc.preview.result is not None:
        note = doc.preview.result.note  # display only: hover, clicks, exports wait
        segmap = doc.preview.segmap(prepared.shape)
    if layer == SEGMENTATION and segmap is not None:
        overlay = segmap
    elif layer == ATTRIBUTION:
        if isinstance(found, str):
            message = found
        else:
            try:
                overlay, normalized = drawings.shown(doc, found)
                caption = found.caption
                drawings.current_attr = None if quick else found.values
            except ValueError as exc:
                message = f"Cannot draw this attribution: {exc}"
    elif layer == ABLATED and pred is not None:
        overlay, message = _ablated_layer(doc)
    if note:
        message = f"{note}. {message}" if message else ""
    return LayerContent(overlay, normalized, caption, message, quick, note, segmap)


@depends_on("image", "model", "analysis", *DRAWING, "layers", "results", "jobs", "preview",
            "ablation", "comparison.active")
def canvas_view(doc: Document, drawings: Drawings) -> CanvasAreaView:
    """The canvas area's content (``drawings.current_attr``: the map under the cursor)."""
    pred, prepared, view, layers = doc.store.prediction, doc.image.prepared, doc.view, \
        doc.layers
    layer = layers.chosen
    found = shown_attribution(doc, drawings)
    content = layer_content(doc, drawings, found)
    overlay, normalized, caption, message = (content.overlay, content.normalized,
                                             content.caption, content.message)
    quick, note, segmap = content.previewing, content.note, content.segmap
    under = _under(doc, drawings, layer, segmap, found)
    outline, outline_key = _outline_for(doc, drawings)
    units = _units(caption, normalized, view.outlier)
    if note:
        units = f"{note}; {units}" if units else note
    panels, panels_message = _panels(doc, drawings, found)
    model = doc.model.loaded
    return CanvasAreaView(
        untrained=model is not None and model.untrained, chosen=layer,
        layer_labels=_layer_labels(doc),
        layer_enabled={name: name == IMAGE or pred is not None for name in LAYER_LABELS},
        opacity_enabled=layer != IMAGE,
        canvas=CanvasView(doc.image.original_rgb(),
                          prepared.rgb if prepared is not None else None, overlay,
                          layers.opacity_of(layer), layers.visible.get(IMAGE, True), under,
                          outline, outline_key),
        footer=_footer(doc, normalized, message or units, units),
        side_by_side=view.side_by_side, panels=panels, panels_message=panels_message,
        previewing=quick, message=message or note, hint=_hint(doc),
        comparing=doc.comparison.active)


def can_export_figure(doc: Document, drawings: Drawings) -> bool:
    """Whether the map is drawn (not a preview's): what a figure shows."""
    layer_content(doc, drawings, shown_attribution(doc, drawings))
    return drawings.current_attr is not None


def _ablated_layer(doc: Document) -> tuple[np.ndarray | None, str]:
    if doc.ablation.active:
        return doc.ablation.drawings.canvas_overlay()
    predict, target = doc.store.predict_key, doc.view.target
    if predict is not None and target is not None:
        overlay = doc.store.ablated(ablated_key(predict, doc.analysis.choice, target))
        if overlay is not None:
            return overlay, ""
    return None, missing(doc, "ablated", "The ablated input")


def _under(doc: Document, drawings: Drawings, front: str, segmap: np.ndarray | None,
           found: Attribution | str) -> tuple[tuple[np.ndarray, float], ...]:
    """The other layers the Layers panel shows, bottom to top, at their opacity."""
    out = []
    for layer in (SEGMENTATION, ATTRIBUTION, ABLATED):
        if layer == front or not doc.layers.visible.get(layer):
            continue
        array: np.ndarray | None = None
        if layer == SEGMENTATION:
            array = segmap
        elif layer == ATTRIBUTION and not isinstance(found, str):
            try:
                array = drawings.shown(doc, found)[0]
            except ValueError:
                array = None
        elif layer == ABLATED and doc.store.prediction is not None:
            array = _ablated_layer(doc)[0]
        if array is not None:
            out.append((array, doc.layers.opacity_of(layer)))
    return tuple(out)


def _layer_labels(doc: Document) -> dict[str, str]:
    labels = dict(LAYER_LABELS)
    if doc.ablation.active:
        labels[ABLATED] = ABLATION_VIEW_LABELS[doc.ablation.view]
    return labels


def _outline_for(doc: Document, drawings: Drawings) -> tuple[np.ndarray | None, object]:
    if doc.ablation.active:  # the segments selected for ablation
        key, rgba = doc.ablation.drawings.outline()
        return rgba, key
    target = doc.view.target
    if not (doc.layers.outline and doc.store.prediction is not None and target is not None
            and doc.layers.chosen != IMAGE):
        return None, None
    return drawings.target_outline(doc, target), (doc.store.predict_key, target)


def _units(caption: str, normalized: NormalizedAttr | None, outlier: float) -> str:
    if normalized is None:
        return ""
    clip = f"saturates at {format_value(abs(normalized.scale))} ({outlier:g} % clipped)"
    return f"{caption}; {clip}" if caption else clip


def _footer(doc: Document, normalized: NormalizedAttr | None, text: str,
            units: str) -> FooterView:
    pred, view = doc.store.prediction, doc.view
    if normalized is not None and not view.side_by_side:
        cmap = view.colormap if view.view in COLORMAP_VIEWS and view.colormap else None
        return FooterView("colorbar", normalized, cmap, units)
    legend: tuple[LegendEntry, ...] | None = None
    hidden = doc.layers.hidden_classes
    if doc.layers.chosen == SEGMENTATION and pred is not None:
        legend = legend_entries(pred, doc.store.class_colors(), hidden)
    ab = doc.ablation
    if (doc.layers.chosen == ABLATED and ab.active and ab.view == VIEW_AFTER
            and ab.shown is not None and pred is not None):
        outcome = ab.shown.outcome  # the new segmentation's classes
        legend = legend_entries(pred, doc.store.class_colors(), hidden,
                                masks=outcome.masks_after, class_map=outcome.class_map_after)
    if legend is not None and not view.side_by_side:
        return FooterView("legend", None, None, "", legend)
    return FooterView("message", None, None, text if doc.image.prepared is not None else "")


def _hint(doc: Document) -> str:
    """A softmax card's model whose outputs look multi-label: said once, in a banner the
    user can dismiss (it never changes the result)."""
    pred = doc.store.prediction
    hint = doc.model.hint_shown(pred.hint) if pred is not None and pred.hint else ""
    return f"Note: {hint}" if hint else ""


def _panels(doc: Document, drawings: Drawings, found: Attribution | str
            ) -> tuple[tuple[Panel, ...], str]:
    view, prepared = doc.view, doc.image.prepared
    if not view.side_by_side:
        return (), ""
    if prepared is None:
        return (), NO_IMAGE
    if isinstance(found, str):
        return (), found
    panels = [Panel("Image", prepared.rgb)]
    for sign in ("all", "positive", "negative"):
        use = view_for_sign(view.view, sign)
        try:
            rgba, normalized = drawings.render(doc, found, use, sign, view.outlier)
        except ValueError as exc:
            return (), f"Cannot draw this attribution: {exc}"
        cmap = view.colormap if use in COLORMAP_VIEWS and view.colormap else None
        panels.append(Panel(f"{VIEW_LABELS[use]}, {SIGN_LABELS[sign].lower()}", rgba,
                            normalized, cmap))
    return tuple(panels), ""
