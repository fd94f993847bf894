"""The window's own content, without Qt: the title, the badges and the status bar's device
line, which commands are enabled (``chrome_view``); the Layers panel (``layers_view``);
what the Model panel says about the image (``model_view``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...engine.budget import MemoryBudget, format_bytes
from .ablation_entries import VIEW_LABELS as ABLATION_VIEW_LABELS
from .canvas_view import can_export_figure, previewing
from .choices import ABLATED, IMAGE, LAYER_LABELS
from .drawings import Drawings
from .events import depends_on
from .explain_view import explain_status
from .states import DRAWING, MEMORY_SOURCE

if TYPE_CHECKING:
    from ...engine.image import PreparedImage
    from .document import Document


@dataclass(frozen=True)
class ChromeView:
    title: str
    untrained: bool
    device_text: str
    chosen: str  # the canvas layer on top (the View menu's check)
    layer_enabled: dict[str, bool]
    side_by_side: bool
    can_save_session: bool
    can_export_view: bool
    can_export_figure: bool
    can_export_all: bool
    can_compute: bool
    can_cancel: bool


@dataclass(frozen=True)
class LayersView:
    visible: dict[str, bool]  # what is shown under the chosen layer
    opacities: dict[str, float]
    chosen: str
    labels: dict[str, str]  # the ablated layer is named after the view it shows


@dataclass(frozen=True)
class ModelView:
    working_note: str  # the working image's size as used (enlarged, capped)
    engine_ready: bool  # the devices and architectures are the engine's


@depends_on("model", "image", "results", "jobs", "preview", "layers", "analysis",
            *DRAWING, "ablation.active", "ablation.selection", "ablation.shown", "ablation.view",
            "comparison.selection", "comparison.active")
def chrome_view(doc: Document, drawings: Drawings) -> ChromeView:
    pred, prepared = doc.store.prediction, doc.image.prepared
    model = doc.model.loaded
    can_compute = explain_status(doc, drawings)[1]
    return ChromeView(
        title=_title(doc), untrained=model is not None and model.untrained,
        device_text=_device_text(doc), chosen=doc.layers.chosen,
        layer_enabled={name: name == IMAGE or pred is not None for name in LAYER_LABELS},
        side_by_side=doc.view.side_by_side, can_save_session=doc.image.source is not None,
        can_export_view=prepared is not None and not previewing(doc),
        can_export_figure=can_export_figure(doc, drawings),
        can_export_all=pred is not None, can_compute=can_compute or pred is not None,
        can_cancel=doc.jobs.busy() or doc.ablation.can_reset() or doc.comparison.can_reset())


@depends_on("layers", "ablation.active", "ablation.view")
def layers_view(doc: Document, drawings: Drawings) -> LayersView:
    labels = dict(LAYER_LABELS)
    if doc.ablation.active:
        labels[ABLATED] = ABLATION_VIEW_LABELS[doc.ablation.view]
    layers = doc.layers
    return LayersView(dict(layers.visible), dict(layers.opacity), layers.chosen, labels)


@depends_on("image", "engine")
def model_view(doc: Document, drawings: Drawings) -> ModelView:
    return ModelView(working_note(doc), doc.engine_ready)


def working_note(doc: Document) -> str:
    """What the model really sees: the working image's size, and whether it was
    enlarged or its longer side capped (a panorama)."""
    prepared = doc.image.prepared
    return describe_working(prepared) if prepared is not None else ""


def describe_working(prepared: PreparedImage) -> str:
    """A prepared image's working size, and whether it was enlarged or capped."""
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


def current_budget(doc: Document) -> MemoryBudget | None:
    """The memory budget the sessions work under: the current session's own (what its
    chunks are sized from); before one, what the setting gives on the loaded model's
    device (None without a model)."""
    session, model = doc.store.session, doc.model.loaded
    if session is not None:
        return session.budget
    return doc.model.budget(model.device) if model is not None else None


def budget_text(doc: Document) -> str:
    """'11.2 GiB (default: half of the 22.3 GiB available (MemAvailable))', '4.0 GiB
    (Preferences)': the budget and where it comes from, in full ('' without a model)."""
    budget = current_budget(doc)
    return budget.describe() if budget is not None else ""


def short_budget(budget: MemoryBudget) -> str:
    """'11.2 GiB (half the free memory)': the budget for the status bar."""
    source = budget.source.removeprefix("default: ")
    if source.startswith("half of the ") and "card" not in source:
        source = "half the free memory"
    elif source == MEMORY_SOURCE:
        source = "set in Preferences"
    return f"{format_bytes(budget.limit)} ({source})"


def _title(doc: Document) -> str:
    """The image and the untrained mark; the platform adds the application's name
    (QGuiApplication.applicationDisplayName)."""
    source, model = doc.image.source, doc.model.loaded
    parts = [source.label] if source is not None else []
    if model is not None and model.card is not None:
        parts.append(f"({model.name})")  # the model card's name
    if model is not None and model.untrained:
        parts.append("[untrained weights]")
    return " ".join(parts)


def _device_text(doc: Document) -> str:
    model = doc.model.loaded
    if model is None:
        return "no model loaded"
    from ...engine.devices import describe_device

    session, budget = doc.store.session, current_budget(doc)
    assert budget is not None  # a model is loaded
    fast = session is not None and session.precision == "bf16"
    return (f"{model.name}" + (" (model card)" if model.card is not None else "")
            + f" on {describe_device(model.device)}"
            + (", fast mode (bf16)" if fast else "")
            + f" · memory budget {short_budget(budget)}"
            + (f"; binary model: {model.categories[0]} = -z, {model.categories[1]} = z"
               if model.binary else ""))
