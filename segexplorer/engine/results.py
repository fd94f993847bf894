"""Results that cross layers: frozen dataclasses of numpy arrays, never live tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..render.palette import class_colors
from .catalog import BINARY, MULTILABEL, SOFTMAX
from .segments import BY_CLASS, Segments, label_set_segments, make_segments

#: how pixels in no class are drawn in a multi-label model's display map
NO_CLASS_COLOUR = (0, 0, 0)


class PixelClass(NamedTuple):
    """A class present at a pixel: its index, its score (logit) and its probability."""

    cls: int
    score: float
    probability: float


def unpack_label_sets(packed: np.ndarray, count: int) -> np.ndarray:
    """... x B x H x W uint8 (``aggregation.pack_label_sets``) to ... x C x H x W bool."""
    axis = packed.ndim - 3
    bits = np.unpackbits(packed, axis=axis, bitorder="little")
    return np.asarray(np.take(bits, np.arange(count), axis=axis), dtype=bool)


@dataclass(frozen=True)
class Prediction:
    """The model's output for one image, and each class's mask.

    ``outputs`` says what the channels are (``engine.catalog.OUTPUT_KINDS``):

    * ``softmax`` (and ``binary``, one logit z explained as ``[-z, z]``): one class per
      pixel, the argmax; ``class_map`` is that class.
    * ``multilabel``: each channel its own sigmoid; class c's mask is z_c >
      logit(threshold) (``masks``), masks may overlap and a pixel may be in no class.
      ``class_map`` is then a *display* map only: at each pixel the present class with
      the largest logit, or ``no_class`` (= the number of classes) where none is
      present; draw it with ``display_colors``. What a class covers is ``mask(c)``.

    Callers never compare ``class_map`` with a class themselves: ``mask``,
    ``pixel_counts``, ``share``, ``present_classes``, ``overlap_counts`` and
    ``describe_pixel`` answer for every kind.
    """

    image: np.ndarray  # H x W x 3 uint8, the working-resolution image
    logits: np.ndarray  # C x H x W float32
    class_map: np.ndarray  # H x W int64: the argmax (multilabel: the display map)
    categories: tuple[str, ...]
    seconds: float = 0.0
    palette: np.ndarray | None = field(default=None, repr=False)  # C x 3 uint8 (a card's)
    outputs: str = SOFTMAX  # softmax | multilabel | binary
    threshold: float = 0.5  # multilabel: present where the class's probability exceeds it
    masks: np.ndarray | None = field(default=None, repr=False)  # C x H x W bool (multilabel)
    hint: str = ""  # e.g. a softmax model whose outputs look multi-label (one line)

    @property
    def binary(self) -> bool:
        """A 1-channel model explained as background / foreground."""
        return self.outputs == BINARY

    @property
    def multilabel(self) -> bool:
        return self.outputs == MULTILABEL

    @property
    def no_class(self) -> int | None:
        """The display map's value where no class is present (multilabel), else None."""
        return len(self.categories) if self.multilabel else None

    @property
    def colors(self) -> np.ndarray:
        """C x 3 uint8 class colours: the model's palette, else VOC's (extended). A
        multi-label model's default skips VOC's black, which is ``NO_CLASS_COLOUR``."""
        if self.palette is not None:
            return self.palette
        n = len(self.categories)
        if self.multilabel:
            return class_colors(max(n + 1, 21))[1:n + 1]
        return class_colors(max(n, 21))[:n]

    @property
    def display_colors(self) -> np.ndarray:
        """Colours indexed by ``class_map``: ``colors``, and for a multi-label model one more
        row, ``NO_CLASS_COLOUR``, for the pixels in no class."""
        if not self.multilabel:
            return self.colors
        return np.vstack([self.colors, np.array([NO_CLASS_COLOUR], np.uint8)])

    @property
    def shape(self) -> tuple[int, int]:
        return self.class_map.shape[0], self.class_map.shape[1]

    @property
    def pixel_counts(self) -> np.ndarray:
        """C: each class's pixels (multilabel: its own mask's; they may add up to more or
        less than the image)."""
        if self.masks is not None:
            return np.asarray(self.masks.sum(axis=(1, 2)), dtype=np.int64)
        return np.bincount(self.class_map.ravel(), minlength=len(self.categories))

    @property
    def present_classes(self) -> list[int]:
        """Predicted classes, largest share first."""
        counts = self.pixel_counts
        present = [int(c) for c in np.flatnonzero(counts)]
        return sorted(present, key=lambda c: (-counts[c], c))

    def share(self, cls: int) -> float:
        """The share of the image's pixels in ``cls``'s mask (multilabel: shares may add up
        to more or less than 1)."""
        return float(self.pixel_counts[cls]) / self.class_map.size

    @property
    def no_class_share(self) -> float:
        """The share of pixels in no class (0 unless multilabel)."""
        if self.masks is None:
            return 0.0
        return float(np.count_nonzero(~self.masks.any(axis=0))) / self.class_map.size

    def overlap_counts(self) -> np.ndarray:
        """C x C int64: pixels in both classes (the diagonal: each class's own pixels).
        Zero off the diagonal unless multilabel."""
        if self.masks is None:
            return np.diag(self.pixel_counts).astype(np.int64)
        flat = self.masks.reshape(len(self.categories), -1).astype(np.int64)
        return np.asarray(flat @ flat.T, dtype=np.int64)

    def mask(self, cls: int) -> np.ndarray:
        """H x W bool: the pixels of ``cls`` (the one place a class's mask is defined;
        callers never compare ``class_map`` with a class themselves). Multilabel: z_c >
        logit(threshold), which may overlap other classes' masks."""
        if self.masks is not None:
            return np.asarray(self.masks[cls])
        return np.asarray(self.class_map == cls)

    def class_masks(self) -> np.ndarray:
        """C x H x W bool: every class's mask at once (one-hot for softmax and binary)."""
        if self.masks is not None:
            return self.masks
        return np.asarray(self.class_map[None] == np.arange(len(self.categories))[:, None, None])

    def segments(self, kind: str = BY_CLASS) -> Segments:
        """The prediction's segments (feature ablation's features): by class or connected
        component; for a multi-label model by label set (each distinct combination of
        classes present, "no class" included, is a segment) or the label sets' connected
        components, so that segments never overlap (Captum's feature_mask is a
        partition)."""
        if self.masks is not None:
            return label_set_segments(self.masks, kind)
        return make_segments(self.class_map, kind)

    def class_index(self, target: str | int) -> int:
        """A class by index or (case-insensitive) name."""
        from .errors import UserError

        if isinstance(target, int) or (isinstance(target, str) and target.strip().isdigit()):
            index = int(target)
            if 0 <= index < len(self.categories):
                return index
            raise UserError(f"Class index {index} is out of range: this model has classes "
                            f"0..{len(self.categories) - 1}.")
        wanted = str(target).strip().lower().replace(" ", "").replace("_", "")
        for i, name in enumerate(self.categories):
            if name.lower().replace(" ", "").replace("_", "") == wanted:
                return i
        raise UserError(f"Unknown class '{target}': use an index or one of "
                        f"{', '.join(self.categories)}.")

    def describe_pixel(self, x: int, y: int) -> tuple[PixelClass, ...]:
        """Every class present at working pixel (x, y), most probable first, with its score
        and probability: softmax, the argmax and its softmax probability; binary, the class
        and the model's own sigmoid; multilabel, each class whose mask holds the pixel and
        its own sigmoid (none: an empty tuple)."""
        scores = self.logits[:, y, x].astype(np.float64)
        if self.masks is not None:
            present = np.flatnonzero(self.masks[:, y, x])
            found = [PixelClass(int(c), float(scores[c]), _sigmoid(float(scores[c])))
                     for c in present]
            return tuple(sorted(found, key=lambda p: (-p.probability, p.cls)))
        cls = int(self.class_map[y, x])
        if self.binary:  # logits [-z, z]: the model's own sigmoid probability
            return (PixelClass(cls, float(scores[cls]), _sigmoid(float(scores[cls]))),)
        probs = np.exp(scores - scores.max())
        return (PixelClass(cls, float(scores[cls]), float(probs[cls] / probs.sum())),)


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class GradCamResult:
    layer: str
    aggregation: str
    upsample: str
    activation_shape: tuple[int, ...]  # the layer output's shape, as LayerActivation's
    raw: dict[int, np.ndarray]  # class -> h x w (layer resolution)
    upsampled: dict[int, np.ndarray]  # class -> H x W (working resolution)
    activation_mean: np.ndarray  # h x w: the layer's activation averaged over channels
    activation_upsampled: np.ndarray  # H x W
    seconds: float = 0.0
    backward_passes: int = 0


@dataclass(frozen=True)
class AblationSweep:
    """One forward pass per segment, every class's score each time."""

    segments: Segments
    baseline: str
    aggregation: str
    initial_scores: np.ndarray  # C: scores of the unperturbed input
    ablated_scores: np.ndarray  # S x C: scores with each segment ablated (rows: ascending id)
    after_maps: np.ndarray | None  # S x H x W: predicted classes with each segment ablated
    #                                (multilabel: the display map, see Prediction)
    forward_passes: int = 0  # images through the model (one per segment)
    chunk_size: int = 1  # the largest batch of ablated images that went through
    seconds: float = 0.0
    batches: tuple[int, ...] = ()  # images per forward pass, in order
    _rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    # multilabel: S x B x H x W uint8, the classes present with each segment ablated,
    # 8 to a byte (``masks_after`` unpacks them)
    after_label_sets: np.ndarray | None = field(default=None, repr=False)

    def masks_after(self, row: int, classes: int) -> np.ndarray | None:
        """C x H x W bool: each class's mask with the segment of ``row`` ablated
        (multilabel sweeps that kept their maps; None otherwise)."""
        if self.after_label_sets is None:
            return None
        return unpack_label_sets(self.after_label_sets[row], classes)

    @property
    def table(self) -> np.ndarray:
        """S x C: Captum's FeatureAblation value, original score minus ablated score."""
        return np.asarray((self.initial_scores[None, :] - self.ablated_scores), np.float32)

    def attribution_map(self, target: int) -> np.ndarray:
        """H x W: what FeatureAblation(wrapper, feature_mask=segments, target) returns."""
        rows = self._rows if self._rows is not None else self.segments.rows_map()
        return np.asarray(self.table[:, target][rows])


@dataclass(frozen=True)
class ShapleyTable:
    """Shapley values of segments for every class, from one set of coalitions."""

    segments: Segments  # the players, rows in ascending id (Captum's feature_mask = rows)
    exact: bool  # every coalition (ShapleyValues) or sampled permutations
    values: np.ndarray  # S x C: each segment's Shapley value for each class
    coalitions: int  # distinct coalitions evaluated (the full one is the prediction's)
    n_samples: int = 0  # permutations (sampling only)
    seed: int = 0
    interactions: np.ndarray | None = None  # S x S x C Shapley interaction index (exact)
    empty_scores: np.ndarray | None = None  # C: every segment removed
    full_scores: np.ndarray | None = None  # C: the image itself

    def attribution_map(self, target: int) -> np.ndarray:
        """H x W: what Captum's ShapleyValues(Sampling) returns for ``target`` with the
        segments (numbered by row) as ``feature_mask``."""
        return np.asarray(self.values[:, target][self.segments.rows_map()], np.float32)

    def top_pairs(self, target: int, count: int = 3) -> list[tuple[int, int, float]]:
        """The pairs of segments that interact most for ``target`` (by |index|), as
        (segment id, segment id, interaction); empty when sampled."""
        if self.interactions is None:
            return []
        table = self.interactions[:, :, target]
        s = table.shape[0]
        pairs = [(i, j, float(table[i, j])) for i in range(s) for j in range(i + 1, s)]
        pairs.sort(key=lambda p: (-abs(p[2]), p[0], p[1]))
        ids = self.segments.id_list
        return [(ids[i], ids[j], v) for i, j, v in pairs[:count] if v != 0.0]


@dataclass(frozen=True)
class MethodMaps:
    """One method's maps for every requested class, and what they cost."""

    method: str
    maps: dict[int, np.ndarray]  # class -> H x W at the working resolution
    raw: dict[int, np.ndarray]  # class -> h x w at the layer (layer methods only)
    settings: tuple[tuple[str, object], ...]  # the options it read (MethodOptions.used_by)
    forward: int = 0  # images through the model (a batch of k counts k), as estimated
    backward: int = 0  # images through a backward pass (one per image and class)
    seconds: float = 0.0
    layer: str | None = None
    layer_shape: tuple[int, ...] | None = None  # the layer output's shape (layer methods)
    detail: str = ""  # e.g. 'exact: 2^5 coalitions'
    shapley: ShapleyTable | None = None
    calls: int = 0  # model calls that carried the forward images (chunks)

    @property
    def targets(self) -> tuple[int, ...]:
        return tuple(self.maps)

    def settings_dict(self) -> dict[str, object]:
        return dict(self.settings)
