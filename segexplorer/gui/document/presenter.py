"""What the window shows, as one value computed from the document.

:meth:`Presenter.present` turns the document into a :class:`WindowView`: the title, the
badges, what the canvas draws (base, overlay, opacity, outline), the footer (colour bar,
legend or message), the side-by-side panels, the explanation panel's status and target
line, which actions are enabled, and the side panels' content (``panel_views``). The
window applies it and holds no state of its own. Drawings are cached here (a view option redraws at once;
the same key gives the same array, so the window can skip unchanged pixmaps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...render import VIEW_AFTER, composite_over, decode_segmap, outline_rgba, render_attribution
from ...render.normalize import NormalizedAttr
from .ablation import HINT as ABLATE_HINT
from .ablation import VIEW_LABELS as ABLATION_VIEW_LABELS
from .choices import (
    ABLATED,
    ACTIVATION,
    ATTRIBUTION,
    COLORMAP_VIEWS,
    IMAGE,
    LAYER_LABELS,
    LAYER_METHODS,
    METHOD_LABELS,
    OTHER_METHODS,
    SEGMENTATION,
    SIGN_LABELS,
    VIEW_LABELS,
    ViewChoice,
    view_for_sign,
)
from .formatting import format_duration, format_shape, format_value
from .panel_views import (
    AblationView,
    EvaluationView,
    ShapleyView,
    StripCell,
    ablation_view,
    evaluation_view,
    shapley_view,
)
from .planner import ablated_key, layer_key, method_key, sweep_key

if TYPE_CHECKING:
    from ...engine.results import Prediction
    from .document import Document

RENDER_CACHE_SIZE = 24
#: shown under the method list while Guided Grad-CAM is chosen (issue 14 measures it)
GUIDED_NOTE = ("Guided Grad-CAM is known to fail the randomisation sanity check (Adebayo "
               "et al., 2018): its maps can look the same for a model with random weights, "
               "showing the image's edges rather than what the model uses.")
AGGREGATION_SHORT = {"argmax": "argmax-masked score", "sum": "summed score"}
HOVER_HINT = "Hover over the image to read a pixel's class and score; click to explain it."
NO_IMAGE = "Open an image."


@dataclass(frozen=True)
class Attribution:
    """A map to draw: H x W values, the colour bar's caption, a drawing-cache key."""

    values: np.ndarray
    caption: str
    key: tuple[Any, ...]


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
    legend: tuple[tuple[str, tuple[int, int, int]], ...] = ()


@dataclass(frozen=True, eq=False)
class WindowView:
    title: str
    untrained: bool
    device_text: str
    canvas_layer: str
    layer_visible: dict[str, bool]  # the Layers panel: what is shown, and how strongly
    opacities: dict[str, float]
    layer_labels: dict[str, str]  # the ablated layer is named after the view it shows
    layer_enabled: dict[str, bool]
    opacity_enabled: bool
    canvas: CanvasView
    footer: FooterView
    side_by_side: bool
    panels: tuple[Panel, ...]
    panels_message: str
    explain_status: str
    can_compute: bool
    classes: Prediction | None  # the classes listed (the preview's while it is shown)
    target: int | None  # the target shown (the preview's default while it is shown)
    target_html: str
    hover_idle: str  # the status-bar hint while the cursor is off the image
    working_note: str  # the working image's size as used (enlarged, capped)
    can_export_view: bool
    can_export_figure: bool
    can_export_all: bool
    can_cancel: bool
    ablation: AblationView
    method_note: str = ""  # a warning about the chosen method (Guided Grad-CAM's)
    shapley: ShapleyView | None = None  # with the Shapley method, once computed
    evaluation: EvaluationView | None = None  # the Evaluate panel


class Presenter:
    """Computes :class:`WindowView` values; keeps the drawings they share."""

    def __init__(self) -> None:
        self._render_cache: dict[tuple[Any, ...], tuple[np.ndarray, NormalizedAttr]] = {}
        self._strips: dict[tuple[Any, ...], tuple[StripCell, ...]] = {}
        self._segmap: tuple[object, np.ndarray] | None = None
        self._outline: tuple[object, np.ndarray] | None = None
        self._predict_key: object = None
        self.current_attr: np.ndarray | None = None  # the map under the cursor's values
        self.current_normalized: NormalizedAttr | None = None
        self.last: WindowView | None = None

    # ======================================================================= pieces
    def attribution(self, doc: Document) -> Attribution | str:
        """The map the explanation layer shows, or why there is none."""
        pred, predict = doc.prediction, doc.predict_key
        if pred is None or predict is None:
            return "Waiting for the model's prediction."
        choice, target = doc.analysis, doc.target
        if target is None and choice.method != ACTIVATION:
            return "Pick a target class in the Classes panel or on the image."
        name = pred.categories[target] if target is not None else "?"
        hide = doc.view.hide_target and target is not None
        if choice.method in LAYER_METHODS:
            gkey = layer_key(predict, choice, doc.store.gradcam_keys())
            result = doc.store.gradcam(gkey)
            if result is None:
                return self._missing(doc, "gradcam", "Grad-CAM")
            shape = format_shape(result.activation_shape)
            if choice.method == ACTIVATION:
                attr = result.activation_upsampled
                caption = (f"Mean activation of {result.layer} ({shape}) over channels, "
                           "upsampled bilinear")
                key: tuple[Any, ...] = (gkey, "activation", target if hide else None, hide)
            else:
                if target not in result.upsampled:
                    return f"No Grad-CAM for '{name}': it is not predicted in this image."
                assert target is not None
                attr = result.upsampled[target]
                caption = (f"Grad-CAM of '{name}' at {result.layer} ({shape}), "
                           f"{AGGREGATION_SHORT[result.aggregation]}")
                key = (gkey, "gradcam", target, hide)
        elif choice.method in OTHER_METHODS:
            label = METHOD_LABELS[choice.method]
            mkey = method_key(predict, choice)
            maps = doc.store.method(mkey)
            if maps is None:
                return self._method_missing(doc, label)
            if target not in maps.maps:
                return f"No {label} for '{name}': it is not predicted in this image."
            assert target is not None
            attr = maps.maps[target]
            where = f" at {maps.layer}" if maps.layer else ""
            caption = (f"{label} of '{name}'{where}, {AGGREGATION_SHORT[choice.aggregation]}"
                       + (f" ({maps.detail})" if maps.detail else ""))
            key = (mkey, choice.method, target, hide)
        else:
            skey = sweep_key(predict, choice)
            sweep = doc.store.sweep(skey)
            if sweep is None:
                return self._missing(doc, "sweep", "The ablation sweep")
            assert target is not None
            attr = sweep.attribution_map(target)
            caption = (f"Drop in the '{name}' score when each segment is replaced by the "
                       f"{sweep.baseline} baseline ({sweep.segments.count} segments)")
            key = (skey, "ablation", target, hide)
        if hide and target is not None:
            from ...render import hide_target

            attr = hide_target(attr, pred.class_map, target)
            caption += "; target segment hidden"
        return Attribution(attr, caption, key)

    @staticmethod
    def _missing(doc: Document, channel: str, what: str) -> str:
        if doc.jobs.is_running(channel):
            return f"{what} is being computed..."
        if doc.jobs.is_blocked(channel):
            return f"{what} was cancelled or failed. Press Compute to run it."
        return f"{what} has not been computed. Press Compute."

    @classmethod
    def _method_missing(cls, doc: Document, label: str) -> str:
        estimate = doc.estimate()
        if doc.jobs.is_running("method"):
            return f"{label} is being computed..."
        if doc.jobs.is_blocked("method"):
            return f"{label} was cancelled or failed. Press Compute to run it."
        if estimate is not None and not estimate.automatic and estimate.seconds is not None:
            return (f"{label} for every class needs {estimate.cost.describe()}, about "
                    f"{format_duration(estimate.seconds)} here. Press Compute to run it.")
        return f"{label} has not been computed. Press Compute."

    def render(self, doc: Document, attribution: Attribution, view: str, sign: str,
               outlier: float) -> tuple[np.ndarray, NormalizedAttr]:
        """Captum's drawing of ``attribution`` over the working image (cached), with the
        chosen colour map where the drawing uses one."""
        cmap = doc.view.colormap if view in COLORMAP_VIEWS else ""
        key = (attribution.key, view, sign, outlier, cmap)
        hit = self._render_cache.get(key)
        if hit is not None:
            return hit
        assert doc.prepared is not None
        rendered = render_attribution(attribution.values, doc.prepared.rgb, view, sign, outlier,
                                      cmap=cmap or None)
        rgba = rendered.rgba
        if view == "alpha_scaling":  # Captum draws it over the white axes background
            rgba = composite_over(rgba)
        if len(self._render_cache) >= RENDER_CACHE_SIZE:
            self._render_cache.pop(next(iter(self._render_cache)))
        self._render_cache[key] = (rgba, rendered.normalized)
        return rgba, rendered.normalized

    def segmap(self, doc: Document) -> np.ndarray | None:
        pred = doc.prediction
        if pred is None:
            return None
        if self._segmap is None or self._segmap[0] != doc.predict_key:
            self._segmap = (doc.predict_key, decode_segmap(pred.class_map, doc.class_colors()))
        return self._segmap[1]

    def describe_pixel(self, doc: Document, x: int, y: int) -> str:
        """The status-bar text for image pixel (x, y) ((-1, -1): off the image)."""
        prepared = doc.prepared
        if prepared is None:
            return ""
        if x < 0:
            return ABLATE_HINT if doc.ablation.active else HOVER_HINT
        sx, sy = prepared.scale
        text = f"x {x}, y {y}  (original {x / sx:.0f}, {y / sy:.0f})"
        pred = doc.prediction
        if pred is not None and pred.class_map.shape == prepared.shape:
            present = pred.describe_pixel(x, y)  # several, or none, for a multi-label model
            for cls, score, prob in present:
                text += f"   {pred.categories[cls]}: score {score:.3g}, p {prob * 100:.0f} %"
            if not present:
                text += "   no class"
        attr = self.current_attr
        if doc.canvas_layer == ATTRIBUTION and attr is not None:
            text += f"   attribution {format_value(float(attr[y, x]))}"
        return text

    # ======================================================================= the whole view
    def present(self, doc: Document) -> WindowView:
        if doc.predict_key != self._predict_key:  # drawings of an older prediction
            self._predict_key = doc.predict_key
            self._render_cache.clear()
        pred, prepared, view = doc.prediction, doc.prepared, doc.view
        layer = doc.canvas_layer
        overlay: np.ndarray | None = None
        normalized: NormalizedAttr | None = None
        caption = message = note = ""
        self.current_attr = None
        attribution: Attribution | str = (self.attribution(doc) if prepared is not None
                                          else NO_IMAGE)
        segmap = self.segmap(doc)
        previewing = doc.preview.showing(pred is not None,
                                         prepared.size if prepared is not None else None)
        if previewing and prepared is not None and doc.preview.result is not None:
            # display only: hover, clicks and exports wait for the full result
            note = doc.preview.result.note
            segmap = doc.preview.segmap(prepared.shape)
            quick = doc.preview.attribution(doc.analysis, doc.target, view.hide_target,
                                            prepared.shape)
            if quick is not None:
                attribution = Attribution(quick.attr, quick.caption, quick.key)
        if layer == SEGMENTATION and segmap is not None:
            overlay = segmap
        elif layer == ATTRIBUTION:
            if isinstance(attribution, str):
                message = attribution
            else:
                try:
                    overlay, normalized = self.render(doc, attribution, view.view, view.sign,
                                                      view.outlier)
                    caption = attribution.caption
                    self.current_attr = None if previewing else attribution.values
                except ValueError as exc:
                    message = f"Cannot draw this attribution: {exc}"
        elif layer == ABLATED and pred is not None and doc.ablation.active:
            overlay, message = doc.ablation.canvas_overlay()
        elif layer == ABLATED and pred is not None and doc.predict_key is not None \
                and doc.target is not None:
            overlay = doc.store.ablated(ablated_key(doc.predict_key, doc.analysis, doc.target))
            if overlay is None:
                message = self._missing(doc, "ablated", "The ablated input")
        elif layer == ABLATED and pred is not None:
            message = self._missing(doc, "ablated", "The ablated input")
        under = self._under(doc, layer, segmap, attribution)
        outline, outline_key = self._outline_for(doc)
        self.current_normalized = normalized
        units = self._units(caption, normalized, view)
        if note:
            units = f"{note}; {units}" if units else note
            message = f"{note}. {message}" if message else ""
        footer = self._footer(doc, normalized, message or units, units)
        panels, panels_message = self._panels(doc, attribution)
        status, can_compute = self._explain_status(doc, message or note, attribution)
        has_view = prepared is not None and not previewing
        classes, target = pred, doc.target
        if previewing and doc.preview.result is not None:
            classes = doc.preview.result.prediction
            target = doc.preview.target(doc.target)
        result = WindowView(
            title=self._title(doc),
            untrained=doc.model is not None and doc.model.untrained,
            device_text=self._device_text(doc),
            canvas_layer=layer,
            layer_visible=dict(doc.layer_visible),
            opacities=dict(doc.opacity),
            layer_labels=self._layer_labels(doc),
            layer_enabled={name: name == IMAGE or pred is not None for name in LAYER_LABELS},
            opacity_enabled=layer != IMAGE,
            canvas=CanvasView(doc.original_rgb(), prepared.rgb if prepared is not None else None,
                              overlay, doc.opacity.get(layer, 1.0),
                              doc.layer_visible.get(IMAGE, True), under, outline, outline_key),
            footer=footer,
            side_by_side=view.side_by_side,
            panels=panels,
            panels_message=panels_message,
            explain_status=status,
            can_compute=can_compute,
            classes=classes,
            target=target,
            target_html=self._target_html(classes, target, doc),
            hover_idle=self.describe_pixel(doc, -1, -1),
            working_note=self._working_note(doc),
            can_export_view=has_view,
            can_export_figure=self.current_attr is not None,
            can_export_all=pred is not None,
            can_cancel=doc.jobs.busy() or doc.ablation.can_reset(),
            ablation=ablation_view(doc),
            method_note=GUIDED_NOTE if doc.analysis.method == "guided_gradcam" else "",
            shapley=shapley_view(doc),
            evaluation=evaluation_view(doc, self._strips),
        )
        self.last = result
        return result

    # ======================================================================= helpers
    def _under(self, doc: Document, front: str, segmap: np.ndarray | None,
               attribution: Attribution | str) -> tuple[tuple[np.ndarray, float], ...]:
        """The other layers the Layers panel shows, bottom to top, at their opacity."""
        out = []
        for layer in (SEGMENTATION, ATTRIBUTION, ABLATED):
            if layer == front or not doc.layer_visible.get(layer):
                continue
            array: np.ndarray | None = None
            if layer == SEGMENTATION:
                array = segmap
            elif layer == ATTRIBUTION and not isinstance(attribution, str):
                try:
                    array = self.render(doc, attribution, doc.view.view, doc.view.sign,
                                        doc.view.outlier)[0]
                except ValueError:
                    array = None
            elif layer == ABLATED and doc.prediction is not None:
                if doc.ablation.active:
                    array = doc.ablation.canvas_overlay()[0]
                elif doc.predict_key is not None and doc.target is not None:
                    array = doc.store.ablated(ablated_key(doc.predict_key, doc.analysis,
                                                          doc.target))
            if array is not None:
                out.append((array, doc.opacity.get(layer, 1.0)))
        return tuple(out)

    @staticmethod
    def _working_note(doc: Document) -> str:
        """What the model really sees: the working image's size, and whether it was
        enlarged or its longer side capped (a panorama)."""
        prepared = doc.prepared
        if prepared is None:
            return ""
        h, w = prepared.shape
        width, height = prepared.original_size
        note = f"Working image {w} x {h} px (the image: {width} x {height})"
        scale = w / width
        if scale > 1.05:
            note += f"; enlarged {scale:.3g}x"
        if min(h, w) < prepared.size:
            ratio = max(h, w) / prepared.size
            note += (f"; the longer side is capped at {ratio:.3g} times the working size, "
                     "so the shorter one is smaller")
        return note

    @staticmethod
    def _layer_labels(doc: Document) -> dict[str, str]:
        labels = dict(LAYER_LABELS)
        if doc.ablation.active:
            labels[ABLATED] = ABLATION_VIEW_LABELS[doc.ablation.view]
        return labels

    def _outline_for(self, doc: Document) -> tuple[np.ndarray | None, object]:
        if doc.ablation.active:  # the segments selected for ablation
            key, rgba = doc.ablation.outline()
            return rgba, key
        pred, target = doc.prediction, doc.target
        if not (doc.outline and pred is not None and target is not None
                and doc.canvas_layer != IMAGE):
            return None, None
        key = (doc.predict_key, target)
        if self._outline is None or self._outline[0] != key:
            self._outline = (key, outline_rgba(pred.mask(target)))
        return self._outline[1], key

    @staticmethod
    def _units(caption: str, normalized: NormalizedAttr | None, view: ViewChoice) -> str:
        if normalized is None:
            return ""
        clip = (f"saturates at {format_value(abs(normalized.scale))} "
                f"({view.outlier:g} % clipped)")
        return f"{caption}; {clip}" if caption else clip

    def _footer(self, doc: Document, normalized: NormalizedAttr | None, text: str,
                units: str) -> FooterView:
        pred, view = doc.prediction, doc.view
        if normalized is not None and not view.side_by_side:
            cmap = view.colormap if view.view in COLORMAP_VIEWS and view.colormap else None
            return FooterView("colorbar", normalized, cmap, units)
        shown_map = None
        if doc.canvas_layer == SEGMENTATION and pred is not None:
            shown_map = pred.class_map
        ab = doc.ablation
        if (doc.canvas_layer == ABLATED and ab.active and ab.view == VIEW_AFTER
                and ab.shown is not None):
            shown_map = ab.shown.outcome.class_map_after  # the new segmentation's classes
        if shown_map is not None and pred is not None and not view.side_by_side:
            colors = doc.class_colors()
            counts = np.bincount(shown_map.ravel(), minlength=len(pred.categories))
            present = sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c))
            legend = tuple((pred.categories[c], (int(colors[c][0]), int(colors[c][1]),
                                                 int(colors[c][2])))
                           for c in present)
            return FooterView("legend", None, None, "", legend)
        return FooterView("message", None, None, text if doc.prepared is not None else "")

    def _panels(self, doc: Document, attribution: Attribution | str
                ) -> tuple[tuple[Panel, ...], str]:
        view = doc.view
        if not view.side_by_side:
            return (), ""
        if doc.prepared is None:
            return (), NO_IMAGE
        if isinstance(attribution, str):
            return (), attribution
        panels = [Panel("Image", doc.prepared.rgb)]
        for sign in ("all", "positive", "negative"):
            use = view_for_sign(view.view, sign)
            try:
                rgba, normalized = self.render(doc, attribution, use, sign, view.outlier)
            except ValueError as exc:
                return (), f"Cannot draw this attribution: {exc}"
            cmap = view.colormap if use in COLORMAP_VIEWS and view.colormap else None
            panels.append(Panel(f"{VIEW_LABELS[use]}, {SIGN_LABELS[sign].lower()}", rgba,
                                normalized, cmap))
        return tuple(panels), ""

    @staticmethod
    def _explain_status(doc: Document, message: str, attribution: Attribution | str
                        ) -> tuple[str, bool]:
        choice, predict = doc.analysis, doc.predict_key
        text = message
        if not text and predict is not None:
            if choice.method in LAYER_METHODS:
                result = doc.gradcam_for()
                if result is not None:
                    n = len(result.raw)
                    text = (f"{METHOD_LABELS[choice.method]} at {result.layer} "
                            f"({format_shape(result.activation_shape)}): "
                            f"{n} class{'es' if n != 1 else ''} from one pass, "
                            f"{result.seconds:.2f} s.")
            elif choice.method in OTHER_METHODS:
                maps = doc.method_for()
                if maps is not None:
                    passes = f"{maps.forward} forward pass{'es' if maps.forward != 1 else ''}"
                    if maps.backward:
                        passes += (f", {maps.backward} backward pass"
                                   f"{'es' if maps.backward != 1 else ''}")
                    text = (f"{METHOD_LABELS[choice.method]}: {passes}, {maps.seconds:.2f} s "
                            f"for {len(maps.maps)} class{'es' if len(maps.maps) != 1 else ''}.")
            else:
                sweep = doc.store.sweep(sweep_key(predict, choice))
                if sweep is not None:
                    text = (f"Sweep: {sweep.segments.count} segments, {sweep.forward_passes} "
                            f"forward passes, {sweep.seconds:.2f} s; serves every class.")
        if not text and isinstance(attribution, str):
            text = attribution
        if predict is None:
            stopped = [c for c in ("image", "model", "predict") if doc.jobs.is_blocked(c)]
            if stopped and not doc.jobs.busy():  # cancelled or failed: Compute retries it
                return ("The prediction was cancelled or failed. Press Compute to run it "
                        "again."), True
            return text, False
        if choice.method in LAYER_METHODS:
            needed_running = doc.jobs.is_running("gradcam")
            done = doc.gradcam_for() is not None
        elif choice.method in OTHER_METHODS:
            needed_running = doc.jobs.is_running("method")
            done = doc.method_for() is not None
        else:
            needed_running = doc.jobs.is_running("sweep")
            done = doc.store.sweep(sweep_key(predict, choice)) is not None
        return text, not needed_running and not done

    @staticmethod
    def _target_html(pred: Prediction | None, target: int | None, doc: Document) -> str:
        if pred is None or target is None:
            return "<b>Target:</b> none yet"
        rgb = pred.colors[target] if pred is not doc.prediction else doc.class_colors()[target]
        colour = "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))
        return (f"<b>Target:</b> <span style='background:{colour}'>&nbsp;&nbsp;&nbsp;</span> "
                f"<b>{pred.categories[target]}</b> (class {target}, "
                f"{pred.share(target) * 100:.1f} % of pixels)")

    @staticmethod
    def _title(doc: Document) -> str:
        """The image and the untrained mark; the platform adds the application's name
        (QGuiApplication.applicationDisplayName)."""
        parts = [doc.source.label] if doc.source is not None else []
        if doc.model is not None and doc.model.card is not None:
            parts.append(f"({doc.model.name})")  # the model card's name
        if doc.model is not None and doc.model.untrained:
            parts.append("[untrained weights]")
        return " ".join(parts)

    @staticmethod
    def _device_text(doc: Document) -> str:
        model = doc.model
        if model is None:
            return "no model loaded"
        from ...engine.devices import describe_device

        fast = doc.session is not None and doc.session.precision == "bf16"
        return (f"{model.name}" + (" (model card)" if model.card is not None else "")
                + f" on {describe_device(model.device)}"
                + (", fast mode (bf16)" if fast else "")
                + (f"; binary model: {model.categories[0]} = -z, {model.categories[1]} = z"
                   if model.binary else ""))
