"""How the window draws and names a prediction's classes, for every kind of outputs.

A softmax or binary model gives each pixel one class: the segmentation is one colour per
pixel (``decode_segmap``), as before. A **multi-label** model's masks may overlap and may
leave pixels in no class, so one colour per pixel cannot show them: each class is drawn
as a translucent layer of its colour with its outline on top (``render.multilabel``),
pixels in no class stay transparent, and classes the user hid (the layers state's
``hidden_classes``, toggled in the legend and the Classes panel) are left out. The
legend lists each class's own share (shares may add up to more or less than 100 %) and
the share in no class; a click picks the most probable class present; the segments are
the prediction's own partition (``Prediction.segments``: label sets for a multi-label
model), and the window says so. Nothing here imports Qt.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...render import class_outlines, decode_segmap, mask_layers
from .choices import AGGREGATION_LABELS, SEGMENT_LABELS
from .formatting import format_share

if TYPE_CHECKING:
    from ...engine.results import Prediction
    from ...engine.segments import Segments

#: each class's layer in the segmentation layer, before the layer's own opacity (0.6 by
#: default): one class shows the image at about half, two overlapping classes mix
LAYER_ALPHA = 0.75
NO_CLASS = "no class"
#: the segments' labels for a multi-label model: its partition is by label set
LABEL_SET_SEGMENT_LABELS = {"class": "By label set", "component": "By label-set component"}
#: the scores' labels for a multi-label model: each class's own mask, not the argmax's
LABEL_SET_AGGREGATION_LABELS = {"argmax": "Sum over its own mask",
                                "sum": AGGREGATION_LABELS["sum"]}
AGGREGATION_SHORT = {"argmax": "argmax-masked score", "sum": "summed score"}
SCORES_TITLE = "Class scores (argmax-masked, original mask)"
SCORES_TIP = ("Each class's score: the sum of its logits over the pixels originally "
              "predicted as that class (the seed's argmax-masked wrapper with the original "
              "prediction's mask, as Captum's FeatureAblation scores it). Largest change "
              "first.")
LABEL_SET_SCORES_TITLE = "Class scores (each class's own original mask)"
LABEL_SET_SCORES_TIP = ("Each class's score: the sum of its logits over the pixels of its "
                        "own mask in the original prediction (z > 0; masks may overlap), as "
                        "Captum's FeatureAblation scores it. Largest change first.")
SEGMENTS_TIP = ("What one segment is: every pixel of a class, or each connected region "
                "of one class.")
LABEL_SET_SEGMENTS_TIP = (
    "This model is multi-label: its classes overlap, and Captum's segments must not, so "
    "each combination of classes present at a pixel (a label set, 'no class' included) "
    "is one segment; or each connected region of one label set.")


@dataclass(frozen=True)
class LegendEntry:
    """One entry of the class legend: a colour and a name; for a multi-label model also
    the class's share of the pixels and whether it is shown (``cls``: the class it
    shows or hides; None for the pixels in no class, and for other models' entries)."""

    name: str
    rgb: tuple[int, int, int]
    share: str = ""
    cls: int | None = None
    shown: bool = True


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    return int(colour[0]), int(colour[1]), int(colour[2])


def visible_classes(count: int, hidden: Collection[int]) -> list[int]:
    return [c for c in range(count) if c not in hidden]


def label_layers(masks: np.ndarray, colors: np.ndarray,
                 hidden: Collection[int] = ()) -> np.ndarray:
    """H x W x 4: each shown class's mask a translucent layer of its colour (overlaps
    mix), its outline opaque on top; transparent where no shown class is present."""
    shown = visible_classes(len(masks), hidden)
    out = mask_layers(masks, colors, LAYER_ALPHA, shown)
    lines = class_outlines(masks, colors, shown)
    drawn = lines[..., 3] > 0
    out[drawn] = lines[drawn]
    return out


def segmentation_drawing(pred: Prediction, colors: np.ndarray,
                         hidden: Collection[int] = ()) -> np.ndarray:
    """What the segmentation layer draws: one colour per pixel (softmax, binary), or the
    classes' layers and outlines (multi-label)."""
    if pred.masks is None:
        return decode_segmap(pred.class_map, colors)
    return label_layers(pred.masks, colors, hidden)


def legend_entries(pred: Prediction, colors: np.ndarray, hidden: Collection[int] = (),
                   masks: np.ndarray | None = None,
                   class_map: np.ndarray | None = None) -> tuple[LegendEntry, ...]:
    """The legend of the prediction (or of the masks or class map after an ablation),
    largest first. Multi-label: every class present with its own share, shown or hidden,
    then the pixels in no class."""
    categories = pred.categories
    if pred.multilabel:
        masks = pred.masks if masks is None else masks
        assert masks is not None
        size = masks[0].size if len(masks) else 1
        counts = masks.reshape(len(masks), -1).sum(axis=1)
        present = sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c))
        entries = [LegendEntry(categories[c], _rgb(colors[c]), format_share(counts[c] / size),
                               int(c), int(c) not in hidden) for c in present]
        nothing = float(np.count_nonzero(~masks.any(axis=0))) / size
        if nothing > 0:
            entries.append(LegendEntry(NO_CLASS, (0, 0, 0), format_share(nothing)))
        return tuple(entries)
    shown_map = pred.class_map if class_map is None else class_map
    counts = np.bincount(shown_map.ravel(), minlength=len(categories))
    present = sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c))
    return tuple(LegendEntry(categories[c], _rgb(colors[c])) for c in present)


def shares_note(pred: Prediction) -> str:
    """A multi-label prediction's shares in one line: what they add up to, and the
    pixels in no class ('' for other models)."""
    if not pred.multilabel:
        return ""
    total = sum(pred.share(c) for c in pred.present_classes)
    return (f"Classes may overlap: their shares add up to {format_share(total)}; "
            f"{format_share(pred.no_class_share)} of the pixels are in no class.")


def class_at(pred: Prediction, x: int, y: int) -> int | None:
    """The class a click at working pixel (x, y) picks: the most probable one present
    (None: the pixel is in no class)."""
    h, w = pred.shape
    if not (0 <= x < w and 0 <= y < h):
        return None
    present = pred.describe_pixel(x, y)
    return present[0].cls if present else None


def segment_labels(multilabel: bool) -> Mapping[str, str]:
    """The segments' labels for a model (a multi-label model's are label sets)."""
    return LABEL_SET_SEGMENT_LABELS if multilabel else SEGMENT_LABELS


def segments_tip(multilabel: bool) -> str:
    return LABEL_SET_SEGMENTS_TIP if multilabel else SEGMENTS_TIP


def aggregation_labels(multilabel: bool) -> Mapping[str, str]:
    """The score's labels (a multi-label model's masked sum runs over each class's own
    mask)."""
    return LABEL_SET_AGGREGATION_LABELS if multilabel else AGGREGATION_LABELS


def aggregation_short(aggregation: str, multilabel: bool) -> str:
    """e.g. 'argmax-masked score' (a multi-label model's: 'own-mask score')."""
    if multilabel and aggregation == "argmax":
        return "own-mask score"
    return AGGREGATION_SHORT[aggregation]


def scores_title(multilabel: bool) -> tuple[str, str]:
    """The Ablation panel's score chart: its title and tooltip."""
    return (LABEL_SET_SCORES_TITLE, LABEL_SET_SCORES_TIP) if multilabel \
        else (SCORES_TITLE, SCORES_TIP)


def segments_kind_label(segments: Segments) -> str:
    """e.g. 'by class', 'by label set', 'drawn region'."""
    if segments.kind.startswith("region"):
        return "drawn region"
    labels = LABEL_SET_SEGMENT_LABELS if segments.label_sets else SEGMENT_LABELS
    return labels.get(segments.kind, segments.kind).lower()


def changed_meaning(multilabel: bool) -> str:
    """What a changed pixel is, in the Ablation panel's words."""
    if multilabel:
        return "Pixels whose set of classes changed, in magenta"
    return "Pixels whose predicted class changed, in magenta"


__all__ = ["LABEL_SET_SEGMENT_LABELS", "NO_CLASS", "LegendEntry", "changed_meaning",
           "class_at", "label_layers", "legend_entries", "segment_labels",
           "segmentation_drawing", "segments_kind_label", "segments_tip", "shares_note"]
