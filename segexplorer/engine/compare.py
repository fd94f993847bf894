"""Two models on one image: what changed between them, and why (pure numpy, no model call).

The comparison is a pure function of two models' analyses of the same image
(:func:`compare`): each side is ``explain``'s own result for that model (its prediction
and maps at its own working size) plus the scores and, for the segment methods, the
maps on the segments both share (:class:`CompareSide`). ``engine.compare_run`` makes the
model calls (two Sessions) and hands them here; the window and ``batch --with`` call the
same two functions.

Definitions (docs/compare.md has them with how to read them):

* **Classes are matched by name**, ignoring case, spaces and underscores (as
  ``Prediction.class_index``). A class only one model knows is listed with its share
  and score in that model, and nothing else.
* **The grid**: every comparison is made on the original image's pixel grid. Class
  maps and masks are resampled to it by nearest neighbour (a label cannot be
  interpolated). Attribution maps are resampled by nearest neighbour too unless asked
  otherwise, so that each original pixel takes its class and its attribution from the
  same working pixel, values are never invented (a map compared with itself gives
  exactly zero), and piecewise-constant maps (ablation, Shapley) keep their steps;
  ``bilinear`` (PIL's) smooths layer maps from models with different working sizes.
* **Masks and shares** come from ``Prediction.mask`` / ``share`` / ``pixel_counts`` /
  ``present_classes`` only (so multi-label models, whose masks overlap, work unchanged).
  A pixel's *label set* is the set of classes whose masks hold it (one class for a
  softmax model); a pixel *changed* when A's and B's label sets differ by name.
* **IoU** of a class: |A's mask and B's| / |A's mask or B's| on the grid.
* **Map statistics**, for each method, over the union of the two masks on the grid
  (the whole image for a map that is the same for every class, the activation):
  Spearman's rank correlation of A's and B's values (None when either is constant
  there, e.g. one ablation segment covers the union), and the difference B - A in
  attribution units: its mean (signed), its mean absolute value and its largest absolute
  value, with each map's mean absolute value for scale.
* **Common segments**: the intersection of A's and B's predictions on the grid: pixels
  with the same label set in A *and* the same label set in B form one segment ("class"),
  or each connected region of those does ("component"). Each segment is one class in A
  and one in B, so ablating it removes the same pixels meaning the same thing to both
  models, and the regions where they disagree are segments of their own. Each model
  ablates them on its own working grid (nearest); the segment methods' maps (feature
  ablation, Shapley) are compared on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .catalog import SEGMENT_KINDS
from .errors import UserError
from .methods import get_method
from .results import AblationSweep, MethodMaps, Prediction
from .segments import SegmentInfo, Segments, make_segments

if TYPE_CHECKING:
    from .analysis import ExplainResult

NEAREST, BILINEAR = "nearest", "bilinear"
RESAMPLE_MODES = (NEAREST, BILINEAR)
SIDES = ("a", "b")


def class_key(name: str) -> str:
    """How class names are matched: case, spaces and underscores ignored (as
    ``Prediction.class_index`` reads a name)."""
    return name.strip().lower().replace(" ", "").replace("_", "")


# -- classes by name -----------------------------------------------------------------------
@dataclass(frozen=True)
class ClassPair:
    """One class, by name, and its index in each model (None: that model lacks it)."""

    name: str  # A's spelling where A has it, else B's
    a: int | None
    b: int | None

    @property
    def shared(self) -> bool:
        return self.a is not None and self.b is not None

    @property
    def known_to(self) -> str:
        return "both" if self.shared else ("a" if self.a is not None else "b")

    def index(self, side: str) -> int | None:
        return self.a if side == "a" else self.b


@dataclass(frozen=True)
class ClassMatching:
    """Both models' classes matched by name: A's in A's order, then B's others."""

    pairs: tuple[ClassPair, ...]
    # a name a model lists twice: (side, that index, the position of its name's pair)
    aliases: tuple[tuple[str, int, int], ...] = ()

    @property
    def shared(self) -> tuple[ClassPair, ...]:
        return tuple(p for p in self.pairs if p.shared)

    @property
    def only_a(self) -> tuple[ClassPair, ...]:
        return tuple(p for p in self.pairs if p.b is None)

    @property
    def only_b(self) -> tuple[ClassPair, ...]:
        return tuple(p for p in self.pairs if p.a is None)

    def of(self, side: str, index: int) -> ClassPair:
        """The pair holding ``side``'s class ``index`` (its name's, for a name listed
        twice)."""
        for p in self.pairs:
            if p.index(side) == index:
                return p
        for alias_side, alias_index, position in self.aliases:
            if alias_side == side and alias_index == index:
                return self.pairs[position]
        raise KeyError(index)

    def named(self, name: str) -> ClassPair | None:
        key = class_key(name)
        for p in self.pairs:
            if class_key(p.name) == key:
                return p
        return None


def match_classes(categories_a: Sequence[str], categories_b: Sequence[str],
                  labels: tuple[str, str] = ("A", "B")) -> ClassMatching:
    """Match two models' classes by name; a one-line UserError when none is shared.

    A name a model lists twice is matched once, by its first index (the others are
    aliases of it)."""
    b_index: dict[str, int] = {}
    for i, name in enumerate(categories_b):
        b_index.setdefault(class_key(name), i)
    pairs: list[ClassPair] = []
    position: dict[str, int] = {}
    for i, name in enumerate(categories_a):
        key = class_key(name)
        if key not in position:
            position[key] = len(pairs)
            pairs.append(ClassPair(name, i, b_index.get(key)))
    for i, name in enumerate(categories_b):
        key = class_key(name)
        if key not in position:
            position[key] = len(pairs)
            pairs.append(ClassPair(name, None, i))
    aliases = tuple((side, i, position[class_key(name)])
                    for side, names in (("a", categories_a), ("b", categories_b))
                    for i, name in enumerate(names)
                    if pairs[position[class_key(name)]].index(side) != i)
    matching = ClassMatching(tuple(pairs), aliases)
    if not matching.shared:
        def some(names: Sequence[str]) -> str:
            return ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")

        short_a, short_b = labels[0].split(" ")[0], labels[1].split(" ")[0]
        raise UserError(f"{labels[0]} and {labels[1]} have no class name in common "
                        f"({short_a}: {some(categories_a)}; {short_b}: "
                        f"{some(categories_b)}): classes are matched by name, so name "
                        "them alike (a model card's classes or labels).")
    return matching


# -- the grid ------------------------------------------------------------------------------
def to_grid(array: NDArray[np.generic], shape: tuple[int, int],
            mode: str = NEAREST) -> NDArray[np.generic]:
    """An H x W array resampled to ``shape`` (rows, columns).

    ``nearest``: each target pixel takes the source pixel its centre falls in (as
    PIL's NEAREST; any dtype, labels and masks included). ``bilinear``: PIL's bilinear
    filter on float32 values (for attribution maps only). The array itself when the
    shape is already right.
    """
    h, w = array.shape[:2]
    rows_out, cols_out = int(shape[0]), int(shape[1])
    if (h, w) == (rows_out, cols_out):
        return array
    if mode == NEAREST:
        rows = np.minimum(((np.arange(rows_out) + 0.5) * (h / rows_out)).astype(np.int64), h - 1)
        cols = np.minimum(((np.arange(cols_out) + 0.5) * (w / cols_out)).astype(np.int64), w - 1)
        return np.ascontiguousarray(array[rows[:, None], cols])
    if mode == BILINEAR:
        from PIL import Image

        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), mode="F")
        resized = image.resize((cols_out, rows_out), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.float32)
    raise UserError(f"Unknown resampling '{mode}': use nearest or bilinear.")


def check_resample(mode: str) -> str:
    if mode not in RESAMPLE_MODES:
        raise UserError(f"Unknown resampling '{mode}': use nearest or bilinear.")
    return mode


# -- label sets: which classes hold each pixel -----------------------------------------------
@dataclass(frozen=True)
class LabelSets:
    """A prediction's pixels grouped by the set of classes whose masks hold them."""

    ids: NDArray[np.int32]  # H x W at the working resolution
    sets: tuple[tuple[int, ...], ...]  # the classes of each id (ascending)


def label_sets(prediction: Prediction) -> LabelSets:
    """Each distinct combination of masks is one id (one class per pixel for a softmax
    model; any combination, or none, for overlapping masks)."""
    present = sorted(prediction.present_classes)
    h, w = prediction.shape
    if not present:
        return LabelSets(np.zeros((h, w), np.int32), ((),))
    masks = np.stack([np.asarray(prediction.mask(c), bool).ravel() for c in present])
    packed = np.packbits(masks, axis=0)  # ceil(K / 8) x N
    rows, inverse = np.unique(packed.T, axis=0, return_inverse=True)
    sets = tuple(tuple(present[k] for k in np.flatnonzero(np.unpackbits(row)[:len(present)]))
                 for row in rows)
    return LabelSets(inverse.reshape(h, w).astype(np.int32), sets)


def _set_keys(sets: Sequence[tuple[int, ...]], categories: Sequence[str]
              ) -> list[frozenset[str]]:
    return [frozenset(class_key(categories[c]) for c in s) for s in sets]


def _pair_codes(la: LabelSets, lb: LabelSets, shape: tuple[int, int]) -> NDArray[np.int64]:
    """Each pixel of ``shape``'s (A's label set, B's label set) as one integer."""
    pa = to_grid(la.ids, shape).astype(np.int64)
    pb = to_grid(lb.ids, shape).astype(np.int64)
    codes: NDArray[np.int64] = pa * len(lb.sets) + pb
    return codes


# -- common segments -------------------------------------------------------------------------
@dataclass(frozen=True)
class CommonSegment:
    id: int
    a_classes: tuple[int, ...]  # A's classes over the segment (one for a softmax model)
    b_classes: tuple[int, ...]
    pixels: int  # on the comparison grid


@dataclass(frozen=True)
class CommonSegments:
    """The intersection of A's and B's predictions on the original image's grid."""

    kind: str  # 'class' (one segment per pair of label sets) or 'component'
    ids: NDArray[np.int64]  # H x W on the grid
    info: tuple[CommonSegment, ...]  # ascending id

    @property
    def count(self) -> int:
        return len(self.info)

    def at(self, x: int, y: int) -> CommonSegment:
        """The segment under original-image pixel (x, y) (a click in either model's view
        ablates this one in both)."""
        h, w = self.ids.shape
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"Point ({x}, {y}) is outside the {w} x {h} image.")
        return self.info[int(self.ids[y, x])]

    def on(self, shape: tuple[int, int], side: str) -> Segments:
        """The segments on one model's working grid (nearest), as a ``Segments`` its
        session ablates (a segment too small to reach that grid is left out; each
        segment's class is that model's, -1 where it predicts none)."""
        ids = to_grid(self.ids, shape).astype(np.int64)
        counts = np.bincount(ids.ravel(), minlength=self.count)
        info = []
        for seg in self.info:
            if counts[seg.id]:
                classes = seg.a_classes if side == "a" else seg.b_classes
                info.append(SegmentInfo(seg.id, classes[0] if classes else -1,
                                        int(counts[seg.id])))
        return Segments(f"common {self.kind}", ids, tuple(info))


def common_segments(prediction_a: Prediction, prediction_b: Prediction,
                    grid: tuple[int, int], kind: str = "class") -> CommonSegments:
    """A's and B's predictions intersected on ``grid`` (see the module's docstring)."""
    if kind not in SEGMENT_KINDS:
        raise UserError(f"Unknown segments '{kind}': use 'class' or 'component'.")
    la, lb = label_sets(prediction_a), label_sets(prediction_b)
    codes = _pair_codes(la, lb, grid)
    nb = len(lb.sets)
    used = np.flatnonzero(np.bincount(codes.ravel(), minlength=len(la.sets) * nb))
    lookup = np.full(len(la.sets) * nb, -1, np.int64)
    lookup[used] = np.arange(len(used))
    dense = lookup[codes]
    if kind == "class":
        ids = dense
        counts = np.bincount(ids.ravel(), minlength=len(used))
        info = tuple(CommonSegment(i, la.sets[int(code) // nb], lb.sets[int(code) % nb],
                                   int(counts[i])) for i, code in enumerate(used))
    else:
        parts = make_segments(dense, "component")
        ids = parts.ids
        info = tuple(CommonSegment(s.id, la.sets[int(used[s.class_index]) // nb],
                                   lb.sets[int(used[s.class_index]) % nb], s.pixels)
                     for s in parts.info)
    return CommonSegments(kind, ids, info)


def region(mask: NDArray[np.bool_], kind: str = "region") -> CommonSegments:
    """A region drawn on the image (a brush stroke, a lasso) as two segments on its grid:
    0 outside, 1 inside. Ablating segment 1 in both models (``compare_run.ablate_both``)
    removes the same pixels from each, on its own working grid (nearest)."""
    inside = np.asarray(mask, bool)
    ids = inside.astype(np.int64)
    count = int(np.count_nonzero(inside))
    return CommonSegments(kind, ids, (CommonSegment(0, (), (), int(inside.size) - count),
                                      CommonSegment(1, (), (), count)))


# -- what is compared ------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareSide:
    """One model's analysis of the image, as the comparison reads it."""

    result: ExplainResult  # explain's own analysis (the a/ or b/ files)
    scores: NDArray[np.float32]  # C: each class's score (the request's aggregation)
    # the segment methods (ablation, Shapley) recomputed on the common segments
    common_maps: dict[str, MethodMaps] = field(default_factory=dict)
    common_sweep: AblationSweep | None = None  # the ablation sweep on the common segments
    aggregation: str = "argmax"  # how ``scores`` were aggregated (engine.aggregation)

    @property
    def prediction(self) -> Prediction:
        return self.result.prediction

    def compared_maps(self, method: str) -> MethodMaps | None:
        """The maps of ``method`` the comparison uses: on the common segments for a
        segment method, explain's own otherwise."""
        if method in self.common_maps:
            return self.common_maps[method]
        return self.result.maps.get(method)

    def score_pixels(self, index: int) -> int:
        """How many working pixels class ``index``'s score sums over: its mask's
        (``argmax``), or the image's (``sum``)."""
        if self.aggregation == "sum":
            h, w = self.prediction.shape
            return h * w
        return int(self.prediction.pixel_counts[index])

    def layer(self, method: str) -> str | None:
        maps = self.compared_maps(method)
        return maps.layer if maps is not None else None


@dataclass(frozen=True)
class MapStats:
    """Two maps of one method compared over a region of the grid (B - A)."""

    method: str
    pixels: int  # grid pixels in the region
    spearman: float | None  # None: undefined (a map constant over the region)
    mean_abs_difference: float
    mean_difference: float  # signed: > 0 where B attributes more than A on average
    max_abs_difference: float
    mean_abs_a: float
    mean_abs_b: float
    # segment methods: Spearman's correlation of the two models' values of the common
    # segments (one observation per segment, over the whole image), and how many
    spearman_segments: float | None = None
    segments: int = 0

    @property
    def identical(self) -> bool:
        return self.max_abs_difference == 0.0


@dataclass(frozen=True)
class SegmentShift:
    """How ablating one common segment moves a class's score in A and in B."""

    segment: int
    a_classes: tuple[str, ...]  # A's classes over the segment
    b_classes: tuple[str, ...]
    share: float  # of the image's pixels (grid)
    delta_a: float  # score(original) - score(segment ablated), Captum's sign
    delta_b: float

    @property
    def difference(self) -> float:
        return self.delta_b - self.delta_a


@dataclass(frozen=True)
class ClassComparison:
    """One class in both models (a row of the per-class table)."""

    pair: ClassPair
    share_a: float | None  # of A's working pixels (Prediction.share); None: A lacks it
    share_b: float | None
    pixels_a: int | None  # A's working pixels
    pixels_b: int | None
    iou: float | None  # of the two masks on the grid; None: not shared or both empty
    score_a: float | None
    score_b: float | None
    maps: dict[str, MapStats]  # method -> statistics (targets of both sides only)
    segments: tuple[SegmentShift, ...] = ()  # largest |difference| first, nonzero only

    @property
    def name(self) -> str:
        return self.pair.name

    @property
    def change(self) -> float:
        """How much the class changed: 1 - IoU; 1 for a class only one model knows, 0 for
        a shared one neither predicts (a target asked for by name)."""
        if self.iou is not None:
            return 1.0 - self.iou
        return 0.0 if self.pair.shared else 1.0


@dataclass(frozen=True)
class Transition:
    """Pixels whose label set is ``before`` in A and ``after`` in B."""

    before: tuple[str, ...]  # A's class names (one for a softmax model; none: no class)
    after: tuple[str, ...]
    pixels: int  # on the grid
    share: float

    @property
    def label(self) -> str:
        def names(n: tuple[str, ...]) -> str:
            return "+".join(n) if n else "(none)"

        return f"{names(self.before)} -> {names(self.after)}"


@dataclass(frozen=True)
class Comparison:
    """Everything compared between two models on one image (frozen, numpy only).

    Per-class figures are in ``classes`` (most changed first); maps on any grid come from
    :meth:`map_on_grid` and :meth:`difference`, the changed pixels from
    :meth:`transition_map`; :meth:`rows` gives the table rows a batch writes.
    """

    grid: tuple[int, int]  # the original image's (rows, columns)
    resample: str  # how attribution maps reach the grid
    matching: ClassMatching
    a: CompareSide
    b: CompareSide
    methods: tuple[str, ...]  # compared (both sides computed them)
    classes: tuple[ClassComparison, ...]  # every class either model predicts
    targets: tuple[ClassPair, ...]  # the classes explained (maps compared where shared)
    model_maps: dict[str, MapStats]  # methods whose map is the same for every class
    transitions: tuple[Transition, ...]  # largest first
    changed_pixels: int
    common: CommonSegments | None
    _labels: tuple[LabelSets, LabelSets, NDArray[np.int64]] = field(repr=False,
                                                                    compare=False)

    @property
    def changed_share(self) -> float:
        return self.changed_pixels / float(self.grid[0] * self.grid[1])

    def side(self, name: str) -> CompareSide:
        return self.a if name == "a" else self.b

    def row(self, name: str) -> ClassComparison:
        key = class_key(name)
        for row in self.classes:
            if class_key(row.name) == key:
                return row
        raise KeyError(name)

    def mask_on_grid(self, side: str, pair: ClassPair,
                     shape: tuple[int, int] | None = None) -> NDArray[np.bool_]:
        """``side``'s mask of the class on the grid (or ``shape``); all False where that
        model lacks the class."""
        shape = shape or self.grid
        index = pair.index(side)
        if index is None:
            return np.zeros(shape, bool)
        mask = np.asarray(self.side(side).prediction.mask(index), bool)
        return np.asarray(to_grid(mask, shape), bool)

    def map_on_grid(self, side: str, method: str, pair: ClassPair,
                    shape: tuple[int, int] | None = None) -> NDArray[np.float32] | None:
        """``side``'s map of ``method`` for the class, resampled to the grid (or
        ``shape``) as the statistics saw it; None where it was not computed."""
        maps = self.side(side).compared_maps(method)
        index = pair.index(side)
        if maps is None or index is None or index not in maps.maps:
            return None
        return np.asarray(to_grid(np.asarray(maps.maps[index], np.float32),
                                  shape or self.grid, self.resample), np.float32)

    def difference(self, method: str, pair: ClassPair,
                   shape: tuple[int, int] | None = None) -> NDArray[np.float32] | None:
        """B's map minus A's on the grid (or ``shape``), in attribution units."""
        a = self.map_on_grid("a", method, pair, shape)
        b = self.map_on_grid("b", method, pair, shape)
        if a is None or b is None:
            return None
        return np.asarray(b.astype(np.float64) - a.astype(np.float64), np.float32)

    def transition_map(self, shape: tuple[int, int] | None = None) -> NDArray[np.int32]:
        """Each pixel's index in ``transitions`` on the grid (or ``shape``); -1 where A
        and B agree."""
        la, lb, lookup = self._labels
        codes = _pair_codes(la, lb, shape or self.grid)
        return np.asarray(lookup[codes], np.int32)

    def rows(self) -> list[dict[str, object]]:
        """One flat row per class (what ``batch --with`` writes per image): the class,
        which model knows it, shares, IoU, scores, change, and per method
        ``<method>_spearman``, ``<method>_mean_abs_difference``,
        ``<method>_mean_difference``; None where undefined."""
        out: list[dict[str, object]] = []
        for row in self.classes:
            entry: dict[str, object] = {
                "class": row.name, "known_to": row.pair.known_to,
                "index_a": row.pair.a, "index_b": row.pair.b,
                "share_a": row.share_a, "share_b": row.share_b, "iou": row.iou,
                "score_a": row.score_a, "score_b": row.score_b, "change": row.change,
            }
            for method in self.methods:
                if not get_method(method).per_class:
                    continue
                stats = row.maps.get(method)
                entry[f"{method}_spearman"] = stats.spearman if stats else None
                entry[f"{method}_mean_abs_difference"] = (stats.mean_abs_difference
                                                          if stats else None)
                entry[f"{method}_mean_difference"] = stats.mean_difference if stats else None
            out.append(entry)
        return out


# -- the comparison itself --------------------------------------------------------------------
def map_stats(method: str, a: ArrayLike, b: ArrayLike, region: NDArray[np.bool_]
              ) -> MapStats:
    """A's and B's maps (same grid) compared over ``region``."""
    from scipy.stats import spearmanr

    va = np.asarray(a, np.float64)[region]
    vb = np.asarray(b, np.float64)[region]
    n = int(va.size)
    if n == 0:
        return MapStats(method, 0, None, 0.0, 0.0, 0.0, 0.0, 0.0)
    diff = vb - va
    rho: float | None = None
    if n >= 2 and np.ptp(va) > 0 and np.ptp(vb) > 0:
        rho = float(spearmanr(va, vb).statistic)
        if not np.isfinite(rho):
            rho = None
    return MapStats(method, n, rho, float(np.abs(diff).mean()), float(diff.mean()),
                    float(np.abs(diff).max()), float(np.abs(va).mean()),
                    float(np.abs(vb).mean()))


def _present_pairs(matching: ClassMatching, pa: Prediction, pb: Prediction
                   ) -> list[ClassPair]:
    """The classes either model predicts, largest share (in either) first."""
    def share(p: ClassPair) -> float:
        return max(pa.share(p.a) if p.a is not None else 0.0,
                   pb.share(p.b) if p.b is not None else 0.0)

    chosen = dict.fromkeys([matching.of("a", c) for c in pa.present_classes]
                           + [matching.of("b", c) for c in pb.present_classes])
    return sorted(chosen, key=lambda p: (-share(p), p.name))


def resolve_targets(matching: ClassMatching, prediction_a: Prediction,
                    prediction_b: Prediction, text: str = "all") -> tuple[ClassPair, ...]:
    """'all' (every class either model predicts, largest first), or names (matched in
    both models) and indices (A's), comma-separated."""
    if text.strip().lower() == "all":
        return tuple(_present_pairs(matching, prediction_a, prediction_b))
    items = [t for t in (s.strip() for s in text.split(",")) if t]
    if not items:
        raise UserError("No target given: use a class name, an index or 'all'.")
    chosen: list[ClassPair] = []
    for item in items:
        if item.isdigit():
            index = prediction_a.class_index(item)  # A's index (range checked)
            pair = matching.of("a", index)
        else:
            found = matching.named(item)
            if found is None:
                raise UserError(f"Unknown class '{item}': neither model knows it; shared "
                                f"classes: {', '.join(p.name for p in matching.shared)}.")
            pair = found
        if pair not in chosen:
            chosen.append(pair)
    return tuple(chosen)


def _segment_values(side: CompareSide, method: str, index: int) -> dict[int, float]:
    """A segment method's value of each common segment for class ``index`` (segments
    too small for this model's grid are absent)."""
    maps = side.common_maps.get(method)
    if method == "ablation" and side.common_sweep is not None:
        sweep = side.common_sweep
        column = sweep.table[:, index]
        return {s.id: float(column[row]) for row, s in enumerate(sweep.segments.info)}
    if maps is not None and maps.shapley is not None:
        table = maps.shapley
        return {s.id: float(table.values[row, index])
                for row, s in enumerate(table.segments.info)}
    return {}


def _with_segment_correlation(stats: MapStats, a: CompareSide, b: CompareSide,
                              pair: ClassPair) -> MapStats:
    from dataclasses import replace

    from scipy.stats import spearmanr

    assert pair.a is not None and pair.b is not None
    va, vb = _segment_values(a, stats.method, pair.a), _segment_values(b, stats.method, pair.b)
    ids = sorted(set(va) & set(vb))
    xa = np.array([va[i] for i in ids], np.float64)
    xb = np.array([vb[i] for i in ids], np.float64)
    rho = None
    if len(ids) >= 2 and np.ptp(xa) > 0 and np.ptp(xb) > 0:
        value = float(spearmanr(xa, xb).statistic)
        rho = value if np.isfinite(value) else None
    return replace(stats, spearman_segments=rho, segments=len(ids))


def _shifts(pair: ClassPair, a: CompareSide, b: CompareSide, common: CommonSegments,
            grid_pixels: int) -> tuple[SegmentShift, ...]:
    sa, sb = a.common_sweep, b.common_sweep
    if sa is None or sb is None or pair.a is None or pair.b is None:
        return ()
    row_a, row_b = sa.segments.row_of(), sb.segments.row_of()
    table_a, table_b = sa.table, sb.table
    names_a, names_b = a.prediction.categories, b.prediction.categories
    shifts = []
    for seg in common.info:
        if seg.id not in row_a or seg.id not in row_b:
            continue  # too small to reach one model's working grid
        da = float(table_a[row_a[seg.id], pair.a])
        db = float(table_b[row_b[seg.id], pair.b])
        if db != da:
            shifts.append(SegmentShift(seg.id, tuple(names_a[c] for c in seg.a_classes),
                                       tuple(names_b[c] for c in seg.b_classes),
                                       seg.pixels / grid_pixels, da, db))
    shifts.sort(key=lambda s: (-abs(s.difference), s.segment))
    return tuple(shifts)


def compare(a: CompareSide, b: CompareSide, grid: tuple[int, int], *,
            matching: ClassMatching | None = None, common: CommonSegments | None = None,
            resample: str = NEAREST) -> Comparison:
    """Compare two models' analyses of one image on its original ``grid`` (rows,
    columns). Pure: no model call; every number is defined in the module's docstring."""
    check_resample(resample)
    pa, pb = a.prediction, b.prediction
    matching = matching or match_classes(pa.categories, pb.categories)
    grid = (int(grid[0]), int(grid[1]))
    grid_pixels = grid[0] * grid[1]
    methods = tuple(m for m in a.result.methods if m in b.result.methods)
    targets_a, targets_b = set(a.result.targets), set(b.result.targets)
    targets = tuple(p for p in _present_pairs(matching, pa, pb)
                    if (p.a is not None and p.a in targets_a)
                    or (p.b is not None and p.b in targets_b))
    extra = [matching.of("a", c) for c in a.result.targets] + \
        [matching.of("b", c) for c in b.result.targets]
    targets = targets + tuple(dict.fromkeys(p for p in extra if p not in targets))

    rows: list[ClassComparison] = []
    for pair in dict.fromkeys(_present_pairs(matching, pa, pb) + list(targets)):
        share_a = pa.share(pair.a) if pair.a is not None else None
        share_b = pb.share(pair.b) if pair.b is not None else None
        iou = None
        stats: dict[str, MapStats] = {}
        if pair.shared:
            assert pair.a is not None and pair.b is not None
            ma = np.asarray(to_grid(np.asarray(pa.mask(pair.a), bool), grid), bool)
            mb = np.asarray(to_grid(np.asarray(pb.mask(pair.b), bool), grid), bool)
            union = ma | mb
            union_count = int(np.count_nonzero(union))
            if union_count:
                iou = int(np.count_nonzero(ma & mb)) / union_count
            for method in methods:
                if not get_method(method).per_class:
                    continue
                maps_a, maps_b = a.compared_maps(method), b.compared_maps(method)
                if maps_a is None or maps_b is None or pair.a not in maps_a.maps \
                        or pair.b not in maps_b.maps:
                    continue
                va = to_grid(np.asarray(maps_a.maps[pair.a], np.float32), grid, resample)
                vb = to_grid(np.asarray(maps_b.maps[pair.b], np.float32), grid, resample)
                stats[method] = map_stats(method, va, vb, union)
                if common is not None and get_method(method).takes_segments:
                    stats[method] = _with_segment_correlation(stats[method], a, b, pair)
        rows.append(ClassComparison(
            pair=pair, share_a=share_a, share_b=share_b,
            pixels_a=int(pa.pixel_counts[pair.a]) if pair.a is not None else None,
            pixels_b=int(pb.pixel_counts[pair.b]) if pair.b is not None else None,
            iou=iou,
            score_a=float(a.scores[pair.a]) if pair.a is not None else None,
            score_b=float(b.scores[pair.b]) if pair.b is not None else None,
            maps=stats,
            segments=_shifts(pair, a, b, common, grid_pixels) if common is not None else ()))
    rows.sort(key=lambda r: (-r.change, -abs((r.share_b or 0.0) - (r.share_a or 0.0)),
                             r.name))

    model_maps: dict[str, MapStats] = {}
    everywhere = np.ones(grid, bool)
    for method in methods:
        if get_method(method).per_class:
            continue
        maps_a, maps_b = a.compared_maps(method), b.compared_maps(method)
        if maps_a is None or maps_b is None or not maps_a.maps or not maps_b.maps:
            continue
        va = to_grid(np.asarray(next(iter(maps_a.maps.values())), np.float32), grid, resample)
        vb = to_grid(np.asarray(next(iter(maps_b.maps.values())), np.float32), grid, resample)
        model_maps[method] = map_stats(method, va, vb, everywhere)

    la, lb = label_sets(pa), label_sets(pb)
    keys_a, keys_b = _set_keys(la.sets, pa.categories), _set_keys(lb.sets, pb.categories)
    codes = _pair_codes(la, lb, grid)
    counts = np.bincount(codes.ravel(), minlength=len(la.sets) * len(lb.sets))
    found: list[tuple[int, int]] = []
    for present in np.flatnonzero(counts):
        i, j = divmod(int(present), len(lb.sets))
        if keys_a[i] != keys_b[j]:
            found.append((int(counts[present]), int(present)))
    found.sort(key=lambda t: (-t[0], t[1]))
    lookup = np.full(len(la.sets) * len(lb.sets), -1, np.int64)
    transitions = []
    for k, (count, code) in enumerate(found):
        lookup[code] = k
        i, j = divmod(code, len(lb.sets))
        transitions.append(Transition(tuple(pa.categories[c] for c in la.sets[i]),
                                      tuple(pb.categories[c] for c in lb.sets[j]),
                                      count, count / grid_pixels))
    return Comparison(
        grid=grid, resample=resample, matching=matching, a=a, b=b, methods=methods,
        classes=tuple(rows), targets=targets, model_maps=model_maps,
        transitions=tuple(transitions), changed_pixels=sum(t.pixels for t in transitions),
        common=common, _labels=(la, lb, lookup))
