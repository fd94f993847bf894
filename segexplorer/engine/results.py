"""Results that cross layers: frozen dataclasses of numpy arrays, never live tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..render.palette import class_colors
from .segments import Segments


@dataclass(frozen=True)
class Prediction:
    image: np.ndarray  # H x W x 3 uint8, the working-resolution image
    logits: np.ndarray  # C x H x W float32
    class_map: np.ndarray  # H x W int64 (argmax over classes)
    categories: tuple[str, ...]
    seconds: float = 0.0
    palette: np.ndarray | None = field(default=None, repr=False)  # C x 3 uint8 (a card's)
    binary: bool = False  # a 1-channel model explained as background / foreground

    @property
    def colors(self) -> np.ndarray:
        """C x 3 uint8 class colours: the model's palette, else VOC's (extended)."""
        if self.palette is not None:
            return self.palette
        return class_colors(max(len(self.categories), 21))[: len(self.categories)]

    @property
    def shape(self) -> tuple[int, int]:
        return self.class_map.shape[0], self.class_map.shape[1]

    @property
    def pixel_counts(self) -> np.ndarray:
        return np.bincount(self.class_map.ravel(), minlength=len(self.categories))

    @property
    def present_classes(self) -> list[int]:
        """Predicted classes, largest share first."""
        counts = self.pixel_counts
        present = [int(c) for c in np.flatnonzero(counts)]
        return sorted(present, key=lambda c: (-counts[c], c))

    def share(self, cls: int) -> float:
        return float(self.pixel_counts[cls]) / self.class_map.size

    def mask(self, cls: int) -> np.ndarray:
        """H x W bool: the pixels predicted as ``cls`` (the one place a class's mask is
        defined; callers never compare ``class_map`` with a class themselves)."""
        return np.asarray(self.class_map == cls)

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

    def describe_pixel(self, x: int, y: int) -> tuple[int, float, float]:
        """(class, its score, its softmax probability) at working pixel (x, y)."""
        cls = int(self.class_map[y, x])
        scores = self.logits[:, y, x].astype(np.float64)
        if self.binary:  # logits [-z, z]: the model's own sigmoid probability
            return cls, float(scores[cls]), float(1.0 / (1.0 + np.exp(-scores[cls])))
        probs = np.exp(scores - scores.max())
        return cls, float(scores[cls]), float(probs[cls] / probs.sum())


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
    forward_passes: int = 0  # images through the model (one per segment)
    chunk_size: int = 1  # the largest batch of ablated images that went through
    seconds: float = 0.0
    batches: tuple[int, ...] = ()  # images per forward pass, in order
    _rows: np.ndarray | None = field(default=None, repr=False, compare=False)

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
