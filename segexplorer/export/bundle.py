"""What ``segexplorer explain`` (and the window's "Export all...", and ``batch`` for every
image) writes into a folder.

:func:`explain_files` renders and encodes the files one by one, in memory (a batch's
writer threads write each as it comes; a Ray actor sends them to the driver);
:func:`write_explain` renders all of them first, then writes each atomically.
"""

from __future__ import annotations

import functools
import platform
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.analysis import SEED_METHODS, ExplainResult
from ..engine.methods import get_method
from ..engine.results import Prediction
from ..engine.segments import Segments
from ..render import composite_over, decode_segmap, multilabel_overlay, render_attribution
from .atomic import ensure_folder, write_bytes
from .files import json_text, npz_bytes, png_bytes
from .outputs import ARRAYS, FULL, MAPS, REPORT, SEGMENTATION, output_parts

#: zlib level of explain's PNGs: level 1 encodes about 3.7x faster than Pillow's default 6
#: for about 15 % more bytes (docs/scale.md, "PNG compression"); the pixels are the same
PNG_LEVEL = 1


@functools.cache
def library_versions() -> dict[str, str]:
    """The libraries behind the numbers (once per process: they do not change).

    captum and matplotlib are named from their installed metadata, so that a run that
    needs neither does not import them for a version string (captum's import is 0.6 s);
    torch, torchvision, numpy and Pillow are loaded by every run anyway.
    """
    import PIL
    import torch
    import torchvision

    from .. import __version__

    return {
        "segexplorer": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": _installed_version("captum"),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "matplotlib": _installed_version("matplotlib"),
    }


def segmentation_png(pred: Prediction) -> np.ndarray:
    """The class map in the model's colours; a multi-label model's masks as overlapping
    translucent layers with each class's outline, over the image (pixels in no class
    show the image)."""
    if pred.masks is not None:
        return multilabel_overlay(pred.image, pred.masks, pred.colors)
    return decode_segmap(pred.class_map, pred.colors)


def _installed_version(package: str) -> str:
    """A package's version from its metadata, else (a bundle without it) its module's."""
    from importlib import import_module, metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return str(getattr(import_module(package), "__version__", "unknown"))


def explain_arrays(result: ExplainResult) -> dict[str, np.ndarray]:
    """The NPZ's arrays: exactly the documented keys (see README)."""
    arrays: dict[str, np.ndarray] = {
        "segmentation": result.prediction.class_map.astype(np.int64),
    }
    if result.prediction.masks is not None:  # multilabel: each class's own mask
        arrays["masks"] = result.prediction.masks.astype(np.uint8)
    if result.gradcam is not None and "gradcam" in result.methods:
        for c in result.targets:
            arrays[f"gradcam_{c}"] = result.gradcam.raw[c].astype(np.float32)
            arrays[f"gradcam_upsampled_{c}"] = result.gradcam.upsampled[c].astype(np.float32)
    if result.sweep is not None:
        for c in result.targets:
            arrays[f"ablation_{c}"] = result.sweep.attribution_map(c).astype(np.float32)
        arrays["segment_ids"] = result.sweep.segments.ids.astype(np.int64)
        arrays["ablation_table"] = result.sweep.table.astype(np.float32)
    for method in result.methods:
        if method in SEED_METHODS:
            continue
        maps = result.method_maps(method)
        for c in result.targets:
            arrays[f"{method}_{c}"] = maps.maps[c].astype(np.float32)
            if c in maps.raw:
                arrays[f"{method}_raw_{c}"] = maps.raw[c].astype(np.float32)
        if maps.shapley is not None:
            arrays.setdefault("segment_ids", maps.shapley.segments.ids.astype(np.int64))
            arrays["shapley_values"] = maps.shapley.values.astype(np.float32)
            if maps.shapley.interactions is not None:
                arrays["shapley_interactions"] = maps.shapley.interactions.astype(np.float32)
    return arrays


def method_report(result: ExplainResult) -> dict:
    """Each method: what it equals, what it read, its passes (its seconds are in
    ``timings_seconds``, which vary from run to run)."""
    out: dict = {}
    for method in result.methods:
        info = get_method(method)
        maps = result.maps.get(method)
        entry: dict = {"label": info.label, "equals": info.equals, "signed": info.signed}
        if maps is not None:  # (its seconds: timings_seconds["method:<name>"])
            entry.update({
                "settings": {k: v for k, v in maps.settings},
                "forward_passes": maps.forward,  # images (a batch of k counts k)
                "backward_passes": maps.backward,  # images through a backward pass
                "forward_calls": maps.calls,
                "detail": maps.detail,
            })
            if maps.layer_shape is not None:
                entry["layer_shape"] = list(maps.layer_shape)
        out[method] = entry
    return out


def shapley_report(result: ExplainResult) -> dict | None:
    maps = result.maps.get("shapley")
    if maps is None or maps.shapley is None:
        return None
    table, pred = maps.shapley, result.prediction
    segments = segment_entries(table.segments, pred.categories)
    targets = {}
    for c in result.targets:
        targets[str(c)] = {
            "values": [float(v) for v in table.values[:, c]],
            "top_pairs": [{"segments": [a, b], "interaction": v}
                          for a, b, v in table.top_pairs(c, 5)],
        }
    return {"exact": table.exact, "coalitions_evaluated": table.coalitions,
            "n_samples": table.n_samples, "seed": table.seed,
            "segments_kind": table.segments.kind,
            "segments_partition": table.segments.partition, "segments": segments,
            "values_meaning": "Shapley value of each segment (rows: ascending id) for the "
                              "class; they sum to score(image) - score(all segments "
                              "replaced by the baseline)",
            "interaction_meaning": "pairwise Shapley interaction index (exact only): > 0 "
                                   "the pair matters more together than apart",
            "targets": targets}


def segment_entries(segments: Segments, categories: tuple[str, ...]) -> list[dict]:
    """Each segment: id, class, pixels (a label set's: its classes too)."""
    entries = []
    for s in segments.info:
        entry: dict = {"id": s.id, "class_index": s.class_index,
                       "class_name": s.name(categories), "pixels": s.pixels}
        if s.classes is not None:
            entry["classes"] = list(s.classes)
        entries.append(entry)
    return entries


def outputs_report(pred: Prediction) -> dict:
    """What the model's outputs are, each class's share of the image, and the pixels
    classes share (multilabel; none for softmax and binary models)."""
    size = pred.class_map.size
    report: dict = {"outputs": pred.outputs,
                    "class_shares": {name: pred.share(c) for c, name in
                                     enumerate(pred.categories)}}
    overlaps = []
    if pred.multilabel:
        report["threshold"] = pred.threshold
        report["no_class_share"] = pred.no_class_share
        both = pred.overlap_counts()
        for a in range(len(pred.categories)):
            for b in range(a + 1, len(pred.categories)):
                if both[a, b]:
                    overlaps.append({"classes": [a, b],
                                     "names": [pred.categories[a], pred.categories[b]],
                                     "pixels": int(both[a, b]),
                                     "share": float(both[a, b]) / size})
    report["overlaps"] = overlaps
    if pred.hint:
        report["outputs_hint"] = pred.hint
    return report


def explain_report(result: ExplainResult) -> dict:
    pred = result.prediction
    counts = pred.pixel_counts
    h, w = pred.shape
    report: dict = {
        "image": result.image_path,
        "model": result.model,
        "weights": result.weights,
        "untrained": result.untrained,
        "device": result.device,
        "size": result.size,
        "working_size": [int(h), int(w)],
        "class_names": list(pred.categories),
        "pixel_counts": {name: int(n) for name, n in zip(pred.categories, counts)},
        "present_classes": pred.present_classes,
        **outputs_report(pred),
        "methods": list(result.methods),
        "forward_passes": result.forward_passes,
        "forward_calls": result.forward_calls,
        "backward_passes": result.backward_passes,
        "precision": result.precision,
    }
    if result.memory_budget is not None:
        report["memory_budget"] = result.memory_budget.as_json()
    info = result.model_info
    if info.get("card") or info.get("binary") or info.get("source", "torchvision") != "torchvision":
        # a model card (or a binary model): where it came from and how it was fed
        report["model_card"] = {key: info[key] for key in
                                ("card", "card_name", "source", "num_classes", "normalization",
                                 "default_layer", "outputs", "binary", "multilabel",
                                 "threshold", "input_padding") if key in info}
    if result.gradcam is not None:
        report["gradcam"] = {
            "layer": result.gradcam.layer,
            "aggregation": result.gradcam.aggregation,
            "upsample": result.gradcam.upsample,
            "activation_shape": list(result.gradcam.activation_shape),
            "layer_resolution": list(next(iter(result.gradcam.raw.values())).shape)
            if result.gradcam.raw else None,
        }
    targets = []
    for c in result.targets:
        entry: dict = {"index": int(c), "name": pred.categories[c], "pixels": int(counts[c])}
        if result.sweep is not None:
            table = result.sweep.table
            entry["score"] = float(result.sweep.initial_scores[c])
            entry["ablation"] = [
                {"segment": s.id, "class_index": s.class_index,
                 "class_name": s.name(pred.categories), "delta": float(table[row, c])}
                for row, s in enumerate(result.sweep.segments.info)
            ]
        targets.append(entry)
    report["targets"] = targets
    if result.sweep is not None:
        report["ablation"] = {
            "segments_kind": result.sweep.segments.kind,
            "segments_partition": result.sweep.segments.partition,
            "baseline": result.sweep.baseline,
            "aggregation": result.sweep.aggregation,
            "delta_meaning": "score(original) - score(segment ablated), as Captum's "
                             "FeatureAblation; ablation_table rows are segments in ascending id",
            "forward_passes": result.sweep.forward_passes,
        }
        report["segments"] = segment_entries(result.sweep.segments, pred.categories)
    if result.maps:
        report["method_costs"] = method_report(result)
    shapley = shapley_report(result)
    if shapley is not None:
        report["shapley"] = shapley
    timings = dict(result.timings)
    for method, maps in result.maps.items():  # every method's own time (the seed's too)
        timings[f"method:{method}"] = maps.seconds
    report["timings_seconds"] = {k: round(v, 4) for k, v in timings.items()}
    report["versions"] = dict(library_versions())
    return report


def class_file_stem(kind: str, index: int, name: str) -> str:
    """'gradcam_16_pottedplant': the class index (the NPZ key's) and its name, reduced to
    letters and digits so that it is a safe file name on every system."""
    slug = re.sub(r"[^a-z0-9]+", "", name.lower())
    return f"{kind}_{index}_{slug}" if slug else f"{kind}_{index}"


@dataclass(frozen=True)
class DrawStyle:
    """How the attribution PNGs are drawn: Captum's ``method``, ``sign`` and
    ``outlier_perc``, and a colour map where the drawing uses one (None: Captum's for
    the sign). ``explain`` draws the seed's blended heat map of both signs; the window's
    Export all draws what its canvas shows."""

    view: str = "blended_heat_map"
    sign: str = "all"
    outlier_perc: float = 2.0
    cmap: str | None = None

    def describe(self) -> str:
        cmap = f", colour map {self.cmap}" if self.cmap else ""
        return (f"{self.view.replace('_', ' ')}, sign {self.sign}, {self.outlier_perc:g} % "
                f"clipped{cmap}")

    def draw(self, values: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(RGBA, the value the colour bar saturates at) of one map."""
        rendered = render_attribution(values, image, self.view, self.sign, self.outlier_perc,
                                      cmap=self.cmap)
        rgba = rendered.rgba
        if self.view == "alpha_scaling":  # Captum draws it over the white axes background
            rgba = composite_over(rgba)
        return rgba, rendered.normalized.scale


def explain_labels(result: ExplainResult) -> dict[str, str]:
    """What every PNG of an explanation is of: the image, the model, its weights."""
    labels = {"Image": result.image_path, "Model": result.model,
              "Weights": result.weights + (" (untrained: random, meaningless)"
                                           if result.untrained else ""),
              "Working size": f"{result.size} px"}
    return labels


def map_labels(base: dict[str, str], result: ExplainResult, method: str, target: int | None,
               layer: str | None, style: DrawStyle, scale: float) -> dict[str, str]:
    """One attribution PNG's labels: what it shows, drawn how, and its colour bar."""
    from .files import tick_text

    label = get_method(method).label
    name = (f"'{result.prediction.categories[target]}' (class {target})"
            if target is not None else "every class")
    where = f" at {layer}" if layer else ""
    labels = {"Title": f"{label} of {name}{where}; {result.model}", **base,
              "Method": label}
    if target is not None:
        labels["Class"] = name
    if layer:
        labels["Layer"] = layer
    low = -abs(scale) if style.sign == "all" else min(0.0, scale)
    high = abs(scale) if style.sign == "all" else max(0.0, scale)
    labels["View"] = style.describe()
    labels["Colour bar"] = (f"{tick_text(low)} .. {tick_text(high)} (attribution units; "
                            "values beyond are clipped)" if scale else "nothing of this sign")
    return labels


Picture = tuple[str, Callable[[], tuple[np.ndarray, dict[str, str]]]]


def heat_map_pictures(result: ExplainResult, style: DrawStyle | None = None,
                      labels: dict[str, str] | None = None) -> Iterator[Picture]:
    """Each heat-map PNG's name and how to draw it (its RGBA and its labels), in explain's
    order, drawn in ``style`` (the seed's blended heat map of both signs by default)."""
    style = style or DrawStyle()
    base = labels if labels is not None else explain_labels(result)
    image = result.prediction.image
    categories = result.prediction.categories

    def drawn(values: np.ndarray, method: str, target: int | None, layer: str | None
              ) -> Callable[[], tuple[np.ndarray, dict[str, str]]]:
        def draw() -> tuple[np.ndarray, dict[str, str]]:
            rgba, scale = style.draw(values, image)
            return rgba, map_labels(base, result, method, target, layer, style, scale)
        return draw

    if result.gradcam is not None:
        if "gradcam" in result.methods:
            for c in result.targets:
                name = class_file_stem("gradcam", c, categories[c])
                yield f"{name}.png", drawn(result.gradcam.upsampled[c], "gradcam", c,
                                           result.gradcam.layer)
        if "activation" in result.methods:
            yield "activation.png", drawn(result.gradcam.activation_upsampled, "activation",
                                          None, result.gradcam.layer)
    if result.sweep is not None:
        for c in result.targets:
            name = class_file_stem("ablation", c, categories[c])
            yield f"{name}.png", drawn(result.sweep.attribution_map(c), "ablation", c, None)
    for method in result.methods:
        if method in SEED_METHODS:
            continue
        maps = result.method_maps(method)
        for c in result.targets:
            name = class_file_stem(method, c, categories[c])
            yield f"{name}.png", drawn(maps.maps[c], method, c, maps.layer or None)


def explain_files(result: ExplainResult, outputs: str = FULL, style: DrawStyle | None = None,
                  labels: dict[str, str] | None = None) -> Iterator[tuple[str, bytes]]:
    """``explain``'s files for ``result`` as (name, bytes), each rendered and encoded when
    asked for, report.json last; ``outputs`` (``export.outputs``) picks the subset. The
    PNGs are drawn in ``style`` and carry their labels as text chunks: ``labels`` (the
    image, the model, its weights: taken from the result by default), then what each
    shows (class, method, layer, drawing, colour bar)."""
    parts = output_parts(outputs)
    base = labels if labels is not None else explain_labels(result)
    if SEGMENTATION in parts:
        yield "segmentation.png", png_bytes(segmentation_png(result.prediction), PNG_LEVEL,
                                            {"Title": f"Segmentation; {result.model}", **base})
    if MAPS in parts:
        for name, draw in heat_map_pictures(result, style, base):
            rgba, png_labels = draw()
            yield name, png_bytes(rgba, PNG_LEVEL, png_labels)
    if ARRAYS in parts:
        yield "attributions.npz", npz_bytes(explain_arrays(result))
    if REPORT in parts:
        yield "report.json", json_text(explain_report(result)).encode("utf-8")


def write_explain(out_dir: str | Path, result: ExplainResult, style: DrawStyle | None = None,
                  labels: dict[str, str] | None = None, outputs: str = FULL) -> list[Path]:
    """Write report.json, attributions.npz and the PNGs into ``out_dir`` (created).

    The PNGs are drawn in ``style`` (the seed's look by default) and carry their labels
    as text chunks: ``labels`` (the image, the model, its weights: taken from the result
    by default), then what each shows (class, method, layer, drawing, colour bar).
    Everything is rendered before the first file is written, so a rendering failure
    writes nothing; each file is then written atomically, report.json last.
    """
    folder = ensure_folder(out_dir)
    files = list(explain_files(result, outputs, style, labels))
    return [write_bytes(folder / name, data) for name, data in files]
