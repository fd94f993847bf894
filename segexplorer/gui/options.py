"""What the user chose, as immutable snapshots (no Qt), and how each choice is labelled.

Panels produce these; the window builds job requests from them (a request is an
immutable snapshot made on the main thread) and stores them in QSettings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

GRADCAM, ACTIVATION, ABLATION = "gradcam", "activation", "ablation"
METHOD_LABELS = {
    GRADCAM: "Layer Grad-CAM",
    ACTIVATION: "Layer activation",
    ABLATION: "Feature ablation",
}
AGGREGATION_LABELS = {
    "argmax": "Argmax-masked sum (seed)",
    "sum": "Plain sum over all pixels",
}
UPSAMPLE_LABELS = {"nearest": "Nearest", "bilinear": "Bilinear"}
SEGMENT_LABELS = {"class": "By class", "component": "By connected component"}
BASELINE_LABELS = {
    "zero": "Zero (ImageNet mean)",
    "black": "Black",
    "blur": "Blurred image",
}
VIEW_LABELS = {
    "blended_heat_map": "Blended heat map",
    "heat_map": "Heat map",
    "masked_image": "Masked image",
    "alpha_scaling": "Alpha scaling",
}
SIGN_LABELS = {
    "all": "All",
    "positive": "Positive",
    "negative": "Negative",
    "absolute_value": "Absolute value",
}
#: Captum cannot draw both signs at once with these methods.
SIGNED_ONLY_VIEWS = ("masked_image", "alpha_scaling")

IMAGE, SEGMENTATION, ATTRIBUTION, ABLATED = "image", "segmentation", "attribution", "ablated"
LAYER_LABELS = {
    IMAGE: "Image",
    SEGMENTATION: "Segmentation",
    ATTRIBUTION: "Explanation",
    ABLATED: "Ablated input",
}
DEFAULT_OPACITY = {IMAGE: 1.0, SEGMENTATION: 0.6, ATTRIBUTION: 1.0, ABLATED: 1.0}


@dataclass(frozen=True)
class ModelChoice:
    architecture: str = "fcn_resnet101"
    weights: str = "default"  # 'default', 'untrained' or a file path
    device: str = "cpu"
    size: int = 640
    precision: str = "fp32"  # 'bf16': fast mode (autocast; close to, not equal to, Captum)

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the loaded model (precision and size do not reload it)."""
        return self.architecture, self.weights, self.device


@dataclass(frozen=True)
class AnalysisChoice:
    """Options that need the model: changing one may start a job."""

    method: str = GRADCAM
    layer: str = ""  # '' = the architecture's default layer
    aggregation: str = "argmax"
    upsample: str = "nearest"
    segments: str = "class"
    baseline: str = "zero"


@dataclass(frozen=True)
class ViewChoice:
    """Options that only change the drawing: never start a job."""

    view: str = "blended_heat_map"
    sign: str = "all"
    outlier: float = 2.0
    hide_target: bool = False
    side_by_side: bool = False


def to_dict(choice) -> dict:
    return {f.name: getattr(choice, f.name) for f in fields(choice)}


def from_dict(cls, data: dict, default=None):
    """Rebuild ``cls`` from stored values, keeping defaults for anything unusable."""
    base = default if default is not None else cls()
    updates = {}
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
