"""What the user chose, as immutable snapshots, and how each choice is labelled.

The vocabulary (methods, aggregations, upsampling, segments, baselines, precisions,
views, signs) is the engine's and the renderer's (``engine.catalog``,
``render.METHODS`` / ``render.SIGNS``); this module only gives each value its label, and
checks at import that every value has one. The document holds the current choices; the
panels show them and send edits; settings store them (:func:`to_dict`, :func:`from_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from ...engine.catalog import (
    BASELINE_CHOICES,
    DEFAULT_ARCHITECTURE,
    DEFAULT_SIZE,
    PRECISIONS,
    SCORE_AGGREGATIONS,
    SEGMENT_KINDS,
    UPSAMPLE_MODES,
)
from ...engine.methods import ABLATION as ABLATION
from ...engine.methods import ACTIVATION as ACTIVATION
from ...engine.methods import GRADCAM as GRADCAM
from ...engine.methods import (
    IG_RULES,
    METHOD_REGISTRY,
    SHAPLEY_EXACT_LIMIT,
    SHAPLEY_MODES,
    MethodOptions,
)
from ...engine.methods import METHODS as METHODS
from ...render.colormaps import COLORMAP_CHOICES
from ...render.composite import METHODS as DRAWING_METHODS
from ...render.normalize import SIGNS
from . import catalog
from .keys import ModelKey


def _labels(values: Iterable[str], labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` in the order of ``values``; every value must have exactly one label."""
    values = tuple(values)
    if set(values) != set(labels):
        raise AssertionError(f"labels {sorted(labels)} do not match {sorted(values)}")
    return {v: labels[v] for v in values}


#: the registry's labels (engine.methods), in its order
METHOD_LABELS = _labels(METHODS, {name: info.label for name, info in METHOD_REGISTRY.items()})
IG_RULE_LABELS = _labels(IG_RULES, {
    "gausslegendre": "Gauss-Legendre (Captum's default)",
    "riemann_trapezoid": "Riemann, trapezoid",
    "riemann_left": "Riemann, left",
    "riemann_right": "Riemann, right",
    "riemann_middle": "Riemann, middle",
})
SHAPLEY_MODE_LABELS = _labels(SHAPLEY_MODES, {
    "auto": f"Exact up to {SHAPLEY_EXACT_LIMIT} segments",
    "exact": "Exact (every coalition)",
    "sampling": "Sampled permutations",
})
AGGREGATION_LABELS = _labels(SCORE_AGGREGATIONS, {
    "argmax": "Argmax-masked sum (seed)",
    "sum": "Plain sum over all pixels",
})
UPSAMPLE_LABELS = _labels(UPSAMPLE_MODES, {"nearest": "Nearest", "bilinear": "Bilinear"})
SEGMENT_LABELS = _labels(SEGMENT_KINDS, {"class": "By class",
                                         "component": "By connected component"})
BASELINE_LABELS = _labels(BASELINE_CHOICES, {
    "zero": "Zero (ImageNet mean)",
    "black": "Black",
    "blur": "Blurred image",
})
VIEW_LABELS = _labels((m for m in DRAWING_METHODS if m != "original_image"), {
    "blended_heat_map": "Blended heat map",
    "heat_map": "Heat map",
    "masked_image": "Masked image",
    "alpha_scaling": "Alpha scaling",
})
# the order the view list shows them in (the most useful first)
VIEW_LABELS = {k: VIEW_LABELS[k] for k in ("blended_heat_map", "heat_map", "masked_image",
                                           "alpha_scaling")}
SIGN_LABELS = _labels(SIGNS, {
    "all": "All",
    "positive": "Positive",
    "negative": "Negative",
    "absolute_value": "Absolute value",
})
#: colour maps for heat maps (Captum's ``cmap=``): '' is Captum's own for each sign
COLORMAP_LABELS = {"": "Captum's (by sign)", **{name: name for name in COLORMAP_CHOICES}}
#: the views whose drawing uses a colour map (masking and alpha scaling use none)
COLORMAP_VIEWS = ("heat_map", "blended_heat_map")
#: Captum cannot draw both signs at once with these methods.
SIGNED_ONLY_VIEWS = ("masked_image", "alpha_scaling")
#: what such a view shows instead when both signs are wanted (side by side, figures)
BOTH_SIGNS_FALLBACK = "blended_heat_map"

IMAGE, SEGMENTATION, ATTRIBUTION, ABLATED = "image", "segmentation", "attribution", "ablated"
LAYER_LABELS = {
    IMAGE: "Image",
    SEGMENTATION: "Segmentation",
    ATTRIBUTION: "Explanation",
    ABLATED: "Ablated input",
}
DEFAULT_OPACITY = {IMAGE: 1.0, SEGMENTATION: 0.6, ATTRIBUTION: 1.0, ABLATED: 1.0}


def view_for_sign(view: str, sign: str) -> str:
    """The drawing method that shows ``view`` with ``sign`` (Captum's rule, in one place)."""
    return BOTH_SIGNS_FALLBACK if sign == "all" and view in SIGNED_ONLY_VIEWS else view


@dataclass(frozen=True)
class ModelChoice:
    architecture: str = DEFAULT_ARCHITECTURE
    weights: str = "default"  # 'default', 'untrained' or a file path
    device: str = "cpu"
    size: int = DEFAULT_SIZE
    precision: str = PRECISIONS[0]  # 'bf16': fast mode (autocast; close to, not equal to, Captum)

    @property
    def key(self) -> ModelKey:
        """What identifies the loaded model (precision and size do not reload it)."""
        return ModelKey(self.architecture, self.weights, self.device)


@dataclass(frozen=True)
class AnalysisChoice:
    """Options that need the model: changing one may start a job."""

    method: str = GRADCAM
    layer: str = ""  # '' = the architecture's default layer
    aggregation: str = "argmax"
    upsample: str = "nearest"
    segments: str = "class"
    baseline: str = "zero"
    n_steps: int = 50  # integrated gradients
    ig_method: str = "gausslegendre"
    window: int = 0  # occlusion (0: sized from the image)
    stride: int = 0
    n_samples: int = 25  # Shapley sampling
    shapley_mode: str = "auto"

    def method_options(self) -> MethodOptions:
        """The engine's options for these choices ('' layer: the model's default)."""
        return MethodOptions(
            layer=self.layer or None, aggregation=self.aggregation, upsample=self.upsample,
            segments=self.segments, baseline=self.baseline, n_steps=self.n_steps,
            ig_method=self.ig_method, window=self.window, stride=self.stride,
            n_samples=self.n_samples, shapley_mode=self.shapley_mode)


@dataclass(frozen=True)
class ViewChoice:
    """Options that only change the drawing: never start a job."""

    view: str = "blended_heat_map"
    sign: str = "all"
    outlier: float = 2.0
    hide_target: bool = False
    side_by_side: bool = False
    colormap: str = ""  # '' = Captum's for the sign; else one of COLORMAP_LABELS

    def valid(self) -> ViewChoice:
        """This choice, with a sign Captum can draw: masked and alpha-scaled views need one
        sign, so 'all' becomes 'positive' there."""
        if self.view in SIGNED_ONLY_VIEWS and self.sign == "all":
            return replace(self, sign="positive")
        return self


C = TypeVar("C", ModelChoice, AnalysisChoice, ViewChoice)


def to_dict(choice: ModelChoice | AnalysisChoice | ViewChoice) -> dict[str, Any]:
    return {f.name: getattr(choice, f.name) for f in fields(choice)}


def from_dict(cls: type[C], data: Mapping[str, Any], default: C | None = None) -> C:
    """Rebuild ``cls`` from stored values, keeping defaults for anything unusable."""
    base = default if default is not None else cls()
    updates: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        wanted = type(getattr(base, f.name))
        try:
            if wanted is bool:
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true")
            else:
                value = wanted(value)
        except (TypeError, ValueError):
            continue
        updates[f.name] = value
    return replace(base, **updates)


def default_model_choice() -> ModelChoice:
    """The default architecture on the best device known, at the default working size."""
    return ModelChoice(catalog.DEFAULT_ARCHITECTURE, "default", catalog.devices()[0],
                       catalog.DEFAULT_SIZE)


def default_target(present: list[int], background: bool = True) -> int | None:
    """The class explained first: the largest predicted one that is not the background
    (class 0), else the largest. A multi-label model has no background class
    (``background=False``): its largest class."""
    foreground = [c for c in present if c != 0 or not background]
    return foreground[0] if foreground else (present[0] if present else None)
