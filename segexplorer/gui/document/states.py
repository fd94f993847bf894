"""The user's choices, one state per concern, each with typed fields and its ``changed``
event (``events.State``): the model, the opened image, the analysis (what to compute),
the view (how to draw it, and the target class), the canvas layers.

Panels bind themselves to these: a widget edits one field (``analysis.method = "ig"``)
and shows that field again when it changes. The frozen snapshots of ``choices``
(``ModelChoice``, ``AnalysisChoice``, ``ViewChoice``) are what keys, settings and session
files hold; each state gives its snapshot as ``choice`` and takes one with ``set``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ...engine.budget import MemoryBudget, parse_gib, resolve_budget
from ...engine.catalog import DEFAULT_ARCHITECTURE, DEFAULT_SIZE, PRECISIONS
from ...engine.methods import GRADCAM, MethodOptions
from . import catalog
from .choices import (
    ATTRIBUTION,
    BASELINE_LABELS,
    DEFAULT_OPACITY,
    IMAGE,
    LAYER_LABELS,
    SIGNED_ONLY_VIEWS,
    AnalysisChoice,
    ModelChoice,
    ViewChoice,
    to_dict,
)
from .events import Event, Field, State
from .keys import ImageKey, ModelKey
from .sources import ImageSource, bytes_source, file_source, sample_source

if TYPE_CHECKING:  # the engine imports torch: the document loads it in a job
    from pathlib import Path

    from PIL.Image import Image

    from ...engine.image import PreparedImage
    from ...engine.models import LoadedModel

#: a method estimated to take longer than this waits for Compute (its cost is shown)
AUTO_RUN_SECONDS = 10.0
#: where a memory budget set in the window comes from (``MemoryBudget.source``)
MEMORY_SOURCE = "Preferences"
#: what the Preferences' memory field says for the engine's default
AUTO_MEMORY = "auto"


def parse_memory_setting(text: str | float | None) -> float | None:
    """The Preferences' memory budget: None for 'auto' (or nothing), else a positive
    number of GiB; anything else is a one-line ``UserError`` naming the setting."""
    if text is None:
        return None
    value = str(text).strip().lower().removesuffix("gib").strip()
    if value in ("", AUTO_MEMORY):
        return None
    return parse_gib(value, "Memory budget")


def format_memory_setting(gib: float | None) -> str:
    """'auto' or '4' / '0.5': the setting as the Preferences' field shows it."""
    return AUTO_MEMORY if gib is None else f"{gib:g}"


class ModelState(State):
    """The Model panel's concern: which model, on which device, at which working size
    and arithmetic; and the model that is loaded (``loaded``, ``loaded_key``)."""

    name = "model"
    architecture = Field(DEFAULT_ARCHITECTURE)
    weights = Field("default")  # 'default', 'untrained' or a file path
    device = Field("cpu")
    size = Field(DEFAULT_SIZE)
    precision = Field(PRECISIONS[0])  # 'bf16': fast mode
    loaded: Field[LoadedModel | None] = Field(None, identity=True)
    loaded_key: Field[ModelKey | None] = Field(None)
    #: the models (architecture or card) whose outputs hint the user dismissed
    hint_dismissed: Field[frozenset[str]] = Field(frozenset())
    #: the memory budget in GiB of every session the window makes (Preferences; None:
    #: auto, the engine's default or SEGEXPLORER_GPU_MEMORY). Not a choice of the
    #: results (they do not depend on it), so in no key and no session file.
    memory_gib: Field[float | None] = Field(None)

    def __init__(self, choice: ModelChoice) -> None:
        super().__init__()
        self.set(choice)

    @property
    def choice(self) -> ModelChoice:
        return ModelChoice(self.architecture, self.weights, self.device, self.size,
                           self.precision)

    def set(self, choice: ModelChoice) -> frozenset[str]:
        return self.update(**to_dict(choice))

    def dismiss_hint(self) -> None:
        """The loaded model's outputs hint (``Prediction.hint``) is not shown again."""
        if self.loaded_key is not None:
            self.hint_dismissed = self.hint_dismissed | {self.loaded_key.architecture}

    def hint_shown(self, hint: str) -> str:
        """``hint`` unless the user dismissed it for the loaded model."""
        key = self.loaded_key
        return hint if key is not None and key.architecture not in self.hint_dismissed else ""

    def set_memory(self, text: str) -> None:
        """The Preferences' memory budget: 'auto' (or nothing) or a number of GiB; a
        bad value is refused in one line (``UserError``) and changes nothing."""
        self.memory_gib = parse_memory_setting(text)

    def budget(self, device: object) -> MemoryBudget:
        """The memory budget of a session on ``device`` under the current setting (the
        engine's ``resolve_budget``: the setting, else SEGEXPLORER_GPU_MEMORY, else the
        device's default; a CUDA default reads the card, so torch is loaded by then)."""
        return resolve_budget(device, self.memory_gib, source=MEMORY_SOURCE)

    def choose_card(self, path: str, size: int | None = None) -> frozenset[str]:
        """A model card (its path is the architecture) with its own weights ('default':
        the card's, never the previous model's untrained demo or file) at its own
        working size, if it names one."""
        return self.update(architecture=path, weights="default",
                           **({"size": size} if size else {}))


class ImageState(State):
    """The opened image: the one asked for (``wanted``) and the one loaded, with its
    working-size preparation. Opening is a job the planner asks for."""

    name = "image"
    wanted: Field[ImageSource | None] = Field(None)
    source: Field[ImageSource | None] = Field(None)
    pil: Field[Image | None] = Field(None, identity=True)
    prepared: Field[PreparedImage | None] = Field(None, identity=True)
    key: Field[ImageKey | None] = Field(None)

    def __init__(self) -> None:
        super().__init__()
        self.opened: Event[ImageSource] = Event()  # a new image is shown
        self._original: tuple[Image, np.ndarray] | None = None

    def open(self, path: str | Path) -> None:
        """Open an image file (it replaces the current one once it has loaded)."""
        self.wanted = file_source(path)

    def open_bytes(self, data: bytes, label: str = "<clipboard>") -> None:
        self.wanted = bytes_source(data, label)

    def open_sample(self) -> None:
        self.wanted = sample_source()

    @property
    def label(self) -> str:
        return self.source.display_path if self.source is not None else ""

    def original_rgb(self) -> np.ndarray | None:
        """The opened image at its own resolution (H x W x 3 uint8; made once)."""
        if self.pil is None or self.prepared is None:
            return None
        if self._original is None or self._original[0] is not self.pil:
            self._original = (self.pil, np.ascontiguousarray(np.asarray(self.pil.convert(
                "RGB"), dtype=np.uint8)))
        return self._original[1]


class LayerPolicy(Protocol):
    """What the analysis asks of the model's layers before it takes one."""

    def default(self) -> str: ...

    def refusal(self, path: str) -> str | None: ...


class AnalysisState(State):
    """What to compute (may start a job): the Explanation panel's upper half."""

    name = "analysis"
    method = Field(GRADCAM)
    layer = Field("")  # '' = the model's default layer
    aggregation = Field("argmax")
    upsample = Field("nearest")
    segments = Field("class")
    baseline = Field("zero")
    n_steps = Field(50)
    ig_method = Field("gausslegendre")
    window = Field(0)
    stride = Field(0)
    n_samples = Field(25)
    shapley_mode = Field("auto")
    #: colours chosen as baselines so far (both baseline lists offer them)
    custom_baselines: Field[tuple[str, ...]] = Field(())
    #: a method estimated to take longer than this waits for Compute
    auto_run_seconds = Field(AUTO_RUN_SECONDS)

    def __init__(self, choice: AnalysisChoice, layers: LayerPolicy | None = None) -> None:
        super().__init__()
        self.layers = layers
        self.refused: Event[str] = Event()  # a layer refused before any work: why
        self.set(choice)

    @property
    def choice(self) -> AnalysisChoice:
        return AnalysisChoice(**{f.name: getattr(self, f.name) for f in fields(AnalysisChoice)})

    def set(self, choice: AnalysisChoice) -> frozenset[str]:
        return self.update(**to_dict(choice))

    def method_options(self) -> MethodOptions:
        return self.choice.method_options()

    def baselines(self) -> tuple[tuple[str, str], ...]:
        """(value, label) of every baseline offered: the engine's, then the colours."""
        return tuple(BASELINE_LABELS.items()) + tuple((c, c) for c in self.custom_baselines)

    def _normalize(self, values: dict[str, Any]) -> dict[str, Any]:
        if "baseline" in values:
            baseline = str(values["baseline"])
            if baseline not in BASELINE_LABELS:
                label = catalog.baseline_label(baseline)
                baseline = label if label is not None else "zero"
                known = values.get("custom_baselines", self.custom_baselines)
                if label is not None and label not in known:
                    values["custom_baselines"] = (*known, label)
            values["baseline"] = baseline
        if "layer" in values and self.layers is not None:
            layer = str(values["layer"]).strip()
            if layer == self.layers.default():
                layer = ""
            refusal = (self.layers.refusal(layer) if layer and layer != self.layer
                       else None)
            if refusal is not None:  # refused in one line, before any work
                del values["layer"]
                self.refused.emit(refusal)
                self.touch("layer")  # the layer field shows the layer in use again
            else:
                values["layer"] = layer
        return values


class ViewState(State):
    """How to draw the explanation (never starts a job), the explained class, and the
    canvas's zoom."""

    name = "view"
    view = Field("blended_heat_map")
    sign = Field("all")
    outlier = Field(2.0)
    hide_target = Field(False)
    side_by_side = Field(False)
    colormap = Field("")  # '' = Captum's for the sign
    target: Field[int | None] = Field(None)
    zoom: Field[float | None] = Field(None)  # screen pixels per image pixel; None: fit

    def __init__(self, choice: ViewChoice) -> None:
        super().__init__()
        self.set(choice)

    @property
    def choice(self) -> ViewChoice:
        return ViewChoice(**{f.name: getattr(self, f.name) for f in fields(ViewChoice)})

    def set(self, choice: ViewChoice) -> frozenset[str]:
        return self.update(**to_dict(choice))

    def _normalize(self, values: dict[str, Any]) -> dict[str, Any]:
        # Captum cannot mask or alpha-scale both signs at once: 'all' becomes 'positive'
        view = values.get("view", self.view)
        if view in SIGNED_ONLY_VIEWS and values.get("sign", self.sign) == "all":
            values["sign"] = "positive"
        return values


#: the view's topics that change a drawing (not the zoom: the canvas scales what it has)
DRAWING = tuple(f"view.{f.name}" for f in fields(ViewChoice)) + ("view.target",)


class LayersState(State):
    """The canvas layers (the Layers panel and the layer bar): the one chosen, drawn on
    top; the others shown under it; each layer's opacity; the target's outline; the
    classes of a multi-label model's segmentation that are hidden."""

    name = "layers"
    chosen = Field(ATTRIBUTION)
    opacity: Field[dict[str, float]] = Field(dict(DEFAULT_OPACITY))
    visible: Field[dict[str, bool]] = Field({name: name == IMAGE for name in LAYER_LABELS})
    outline = Field(True)
    #: a multi-label model's classes the segmentation leaves out (the legend's toggles)
    hidden_classes: Field[frozenset[int]] = Field(frozenset())

    def __init__(self, chosen: str = ATTRIBUTION, opacity: dict[str, float] | None = None,
                 outline: bool = True) -> None:
        super().__init__()
        self.update(chosen=chosen if chosen in LAYER_LABELS else ATTRIBUTION,
                    opacity={**DEFAULT_OPACITY, **(opacity or {})}, outline=bool(outline))

    def opacity_of(self, layer: str | None = None) -> float:
        return self.opacity.get(layer or self.chosen, 1.0)

    def set_opacity(self, value: float, layer: str | None = None) -> None:
        self.opacity = {**self.opacity, layer or self.chosen: min(1.0, max(0.0, float(value)))}

    def set_visible(self, layer: str, on: bool) -> None:
        """Show ``layer`` under the chosen one (the image: the base) or not."""
        self._check(layer)
        self.visible = {**self.visible, layer: bool(on)}

    def set_class_visible(self, cls: int, on: bool) -> None:
        """Show or hide one class of a multi-label model's segmentation."""
        hidden = set(self.hidden_classes)
        if on:
            hidden.discard(int(cls))
        else:
            hidden.add(int(cls))
        self.hidden_classes = frozenset(hidden)

    def toggle_class(self, cls: int) -> None:
        self.set_class_visible(cls, int(cls) in self.hidden_classes)

    def _normalize(self, values: dict[str, Any]) -> dict[str, Any]:
        if "chosen" in values:
            self._check(values["chosen"])
        if "hidden_classes" in values:
            values["hidden_classes"] = frozenset(int(c) for c in values["hidden_classes"])
        return values

    @staticmethod
    def _check(layer: str) -> None:
        if layer not in LAYER_LABELS:
            raise ValueError(f"unknown layer {layer!r}")
