"""Grouping pixels into segments for feature ablation.

By class: segment id = predicted class index (the seed's ``feature_mask=out_max``).
By component: each connected region of one predicted class is its own segment
(one person among several), ids 0..K-1 ordered by class then by scan order.

A multi-label model's classes overlap, but Captum's ``feature_mask`` is a partition, so
its segments are **label sets** (:func:`label_set_segments`): each distinct combination
of classes present at a pixel ("no class" included) is one segment, ids 0..K-1 in the
order of the sorted tuples of classes (``()`` first); by component, each connected region
of one label set. ``Segments.label_sets`` says which partition a table used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .catalog import SEGMENT_KINDS
from .errors import UserError

BY_CLASS, BY_COMPONENT = SEGMENT_KINDS
SEGMENTATIONS = SEGMENT_KINDS


#: a label-set segment's ``class_index`` when it holds the pixels in no class
NO_CLASS_SEGMENT = -1


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    class_index: int  # its class; a label set's first class (NO_CLASS_SEGMENT: none)
    pixels: int
    classes: tuple[int, ...] | None = None  # a label-set segment's classes (None: by class)

    def has_class(self, cls: int) -> bool:
        """Whether the segment's pixels are in ``cls`` (its class, or one of its labels)."""
        return cls in self.classes if self.classes is not None else self.class_index == cls

    def name(self, categories: Sequence[str]) -> str:
        """'person'; a label set's 'tumour core + enhancing', or 'no class'."""
        if self.classes is not None:
            return " + ".join(categories[c] for c in self.classes) or "no class"
        if not 0 <= self.class_index < len(categories):  # a region over a display map's
            return "no class"  # "no class" pixels (multilabel)
        return categories[self.class_index]


@dataclass(frozen=True)
class Segments:
    kind: str
    ids: np.ndarray  # H x W int64: the feature mask
    info: tuple[SegmentInfo, ...]  # ascending id
    label_sets: bool = False  # a multi-label model's partition by the sets of classes present

    @property
    def partition(self) -> str:
        """Which partition this is, as reports record it."""
        if self.label_sets:
            return ("label set: each combination of classes present is a segment"
                    if self.kind == BY_CLASS else
                    "label-set component: each connected region of one combination of "
                    "classes is a segment")
        return {BY_CLASS: "class", BY_COMPONENT: "connected component"}.get(self.kind,
                                                                            self.kind)

    @property
    def count(self) -> int:
        return len(self.info)

    @property
    def id_list(self) -> list[int]:
        return [s.id for s in self.info]

    def row_of(self) -> dict[int, int]:
        """Segment id -> row in tables ordered by ascending id."""
        return {s.id: row for row, s in enumerate(self.info)}

    def at(self, x: int, y: int) -> SegmentInfo:
        """The segment under working-resolution pixel (x, y)."""
        h, w = self.ids.shape
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"Point ({x}, {y}) is outside the {w} x {h} working image.")
        seg_id = int(self.ids[y, x])
        return next(s for s in self.info if s.id == seg_id)

    def mask(self, segment_ids: Iterable[int]) -> np.ndarray:
        """H x W bool: the pixels of the given segments (np.isin, by a lookup table: 8x
        faster at 640 px, and a click computes it)."""
        top = self.info[-1].id if self.info else 0
        lookup = np.zeros(top + 1, dtype=bool)
        wanted = [int(s) for s in segment_ids if 0 <= int(s) <= top]
        lookup[wanted] = True
        return np.asarray(lookup[self.ids])

    def rows_map(self) -> np.ndarray:
        """H x W array of table rows (for gathering per-segment values into a map)."""
        lookup = np.zeros(int(self.ids.max()) + 1, dtype=np.int64)
        for row, s in enumerate(self.info):
            lookup[s.id] = row
        return np.asarray(lookup[self.ids])


REGION = "region"  # a region the user drew: segment 1 inside, 0 outside


def region_segments(class_map: np.ndarray, inside: np.ndarray, kind: str = REGION) -> Segments:
    """Two segments: the drawn region (id 1) and the rest (id 0); each is named after the
    predicted class that covers most of it."""
    inside = np.asarray(inside, dtype=bool)
    if inside.shape != np.asarray(class_map).shape:
        raise UserError(f"The region is {inside.shape} but the image is "
                        f"{np.asarray(class_map).shape}.")
    if not inside.any():
        raise UserError("The drawn region is empty: draw over the image.")
    ids = inside.astype(np.int64)
    info = []
    for seg_id, where in ((0, ~inside), (1, inside)):
        if where.any():
            counts = np.bincount(np.asarray(class_map)[where].ravel())
            info.append(SegmentInfo(seg_id, int(counts.argmax()), int(where.sum())))
    return Segments(kind, ids, tuple(info))


def label_set_segments(masks: np.ndarray, kind: str = BY_CLASS) -> Segments:
    """The partition of a multi-label prediction (``masks``: C x H x W bool, overlapping)
    by the set of classes present at each pixel, or (``kind`` 'component') by the
    connected regions of each set (see the module docstring)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise UserError(f"Label masks must be C x H x W, not {masks.shape}.")
    count, h, w = masks.shape
    if kind not in SEGMENT_KINDS:
        raise UserError(f"Unknown segments '{kind}': use 'class' or 'component'.")
    if count <= 62:  # one integer per pixel: bit c set where class c is present
        codes = np.zeros((h, w), dtype=np.int64)
        for c in range(count):
            codes |= masks[c].astype(np.int64) << c
        # a lookup table, linear: 19 ms for 5 classes at 640 x 860 where np.unique's sort
        # took 560 ms (measured on a shared 2-core machine, load 7)
        if count <= 16:
            seen = np.flatnonzero(np.bincount(codes.ravel(), minlength=1 << count))
            lookup = np.zeros(1 << count, dtype=np.int64)
            lookup[seen] = np.arange(len(seen))
            unique, inverse = seen, lookup[codes]
        else:
            unique, inverse = np.unique(codes, return_inverse=True)
        sets = [tuple(c for c in range(count) if int(u) >> c & 1) for u in unique]
    else:
        packed = np.packbits(masks, axis=0, bitorder="little").reshape(-1, h * w)  # B x N
        rows, inverse = np.unique(packed.T, axis=0, return_inverse=True)
        sets = [tuple(int(c) for c in np.flatnonzero(
            np.unpackbits(row, bitorder="little")[:count])) for row in rows]
    order = sorted(range(len(sets)), key=lambda i: sets[i])
    rank = np.empty(len(sets), dtype=np.int64)
    rank[order] = np.arange(len(sets))
    set_map = rank[np.asarray(inverse).reshape(-1)].reshape(h, w)
    ordered = [sets[i] for i in order]

    def info(seg_id: int, classes: tuple[int, ...], pixels: int) -> SegmentInfo:
        return SegmentInfo(seg_id, classes[0] if classes else NO_CLASS_SEGMENT, pixels,
                           classes)

    if kind == BY_CLASS:
        sizes = np.bincount(set_map.ravel(), minlength=len(ordered))
        return Segments(kind, set_map, tuple(info(k, labels, int(sizes[k]))
                                             for k, labels in enumerate(ordered)),
                        label_sets=True)
    ids = np.zeros((h, w), dtype=np.int64)
    infos: list[SegmentInfo] = []
    for k, labels in enumerate(ordered):
        components, n = ndimage.label(set_map == k)
        sizes = np.bincount(components.ravel(), minlength=n + 1)
        start = len(infos)
        ids[components > 0] = components[components > 0] - 1 + start
        infos.extend(info(start + j, labels, int(sizes[j + 1])) for j in range(n))
    return Segments(kind, ids, tuple(infos), label_sets=True)


def make_segments(class_map: np.ndarray, kind: str = BY_CLASS) -> Segments:
    """Segments of a predicted class map (H x W ints)."""
    class_map = np.asarray(class_map)
    if kind == BY_CLASS:
        ids = class_map.astype(np.int64, copy=True)
        values, counts = np.unique(ids, return_counts=True)
        by_class = tuple(SegmentInfo(int(v), int(v), int(n)) for v, n in zip(values, counts))
        return Segments(kind, ids, by_class)
    if kind == BY_COMPONENT:
        ids = np.zeros(class_map.shape, dtype=np.int64)
        info: list[SegmentInfo] = []
        for cls in np.unique(class_map):
            labels, count = ndimage.label(class_map == cls)
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            start = len(info)
            ids[labels > 0] = labels[labels > 0] - 1 + start
            info.extend(SegmentInfo(start + k, int(cls), int(sizes[k + 1])) for k in range(count))
        return Segments(kind, ids, tuple(info))
    raise UserError(f"Unknown segments '{kind}': use 'class' or 'component'.")
