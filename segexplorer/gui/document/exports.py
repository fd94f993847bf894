"""The document's exports: the view, a figure, everything ``explain`` writes, ablations,
the evaluation's files.

Each export is a request run by the job table like every job (files are written
atomically, off the GUI thread), and ends with the document's ``saved`` event: a
:class:`WriteFile` for one file or folder, :class:`ExportAll` for what ``explain``
writes. The window only picks the paths (dialogs) and composes what its canvas shows;
the writing is ``segexplorer.export``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from ...engine.methods import get_method
from .canvas_view import attribution
from .choices import (
    ATTRIBUTION,
    COLORMAP_VIEWS,
    IMAGE,
    LAYER_LABELS,
    METHOD_LABELS,
    SEGMENT_LABELS,
    SIGN_LABELS,
    VIEW_LABELS,
    ViewChoice,
    view_for_sign,
)
from .drawings import Attribution
from .jobtable import Job
from .keys import PredictKey
from .messages import Saved
from .requests import WriteFile
from .results import OTHER_METHODS, gradcam_key, method_key, sweep_key
from .runner import JobContext

if TYPE_CHECKING:
    from ...engine.analysis import ExplainRequest, ExplainResult
    from ...engine.results import AblationSweep, GradCamResult, MethodMaps
    from ...engine.session import Session
    from ...export.bundle import DrawStyle
    from .ablation import AblationEntry
    from .document import Document


@dataclass(frozen=True, eq=False)
class ExportAll:
    """Everything ``segexplorer explain`` writes, from what the document holds."""

    folder: str
    predict: PredictKey
    request: ExplainRequest
    session: Session
    gradcam: GradCamResult | None
    sweep: AblationSweep | None
    computed: dict[str, MethodMaps]
    style: DrawStyle  # the window's drawing: the PNGs look as the canvas does
    labels: dict[str, str]  # the image, the model, its weights (each PNG's metadata)
    channel: ClassVar[str] = "export"

    @property
    def key(self) -> tuple[str, PredictKey, int]:
        return self.folder, self.predict, id(self)


def figure_layout(view: ViewChoice) -> tuple[list[str], list[str], list[str]]:
    """(methods, signs, titles) of the exported figure, as the window shows the map:
    side by side, the image, then the view with both signs (or its fallback), positive
    and negative (the window's panels); else the one view, with its sign."""
    method = view.view
    if not view.side_by_side:
        return [method], [view.sign], [f"{VIEW_LABELS[method]}, {SIGN_LABELS[view.sign].lower()}"]
    methods = ["original_image", view_for_sign(method, "all"), method, method]
    signs = ["all", "all", "positive", "negative"]
    titles = ["Image"] + [f"{VIEW_LABELS[m]}, {SIGN_LABELS[s].lower()}"
                          for m, s in zip(methods[1:], signs[1:], strict=True)]
    return methods, signs, titles


def drawn_colormap(view: ViewChoice) -> str | None:
    """The colour map the window draws the view with (None: Captum's for the sign)."""
    return view.colormap or None if view.view in COLORMAP_VIEWS else None


class Exports:
    """Export jobs of one document."""

    def __init__(self, document: Document) -> None:
        self.doc = document
        self.last_saved: Path | None = None
        document.saved.connect(self._on_saved)
        document.jobs.register(ExportAll, self._all_job, done=self._exported)

    def _on_saved(self, saved: Saved) -> None:
        self.last_saved = Path(saved.path)

    def _write(self, target: Path, write: Callable[[JobContext], object], label: str,
               message: Callable[[Path], str]) -> None:
        self.doc.jobs.start(WriteFile(str(target), write, label, message),  # type: ignore[arg-type]
                            force=True)

    def default_name(self, folder: str, suffix: str) -> str:
        source = self.doc.image.source
        stem = Path(source.label).stem if source is not None else "segexplorer"
        stem = stem.strip("<>") or "image"
        return str(Path(folder) / f"{stem}_{self.doc.layers.chosen}{suffix}")

    def view(self, path: str | Path, rgba: np.ndarray, working: bool = False) -> None:
        """Save ``rgba`` (what the window shows) as a PNG, labelled with what it shows
        (:meth:`labels`) in its text chunks."""
        target = Path(path)
        labels = self.labels(view=True)
        labels["Resolution"] = "working (the model's pixels)" if working \
            else "the image's own (the layers resampled onto it)"

        def job(state: JobContext) -> Path:
            from ...export import save_png

            return save_png(target, rgba, labels)

        self._write(target, job, "Saving the view", lambda p: f"Saved {p.name}")

    def figure(self, path: str | Path) -> str | None:
        """The map as the window draws it (one panel, or the side-by-side panels), by
        Captum itself, its colour bars in the window's units, titled and labelled with
        what it shows; returns why not, or None."""
        found = attribution(self.doc)
        if isinstance(found, str):
            return found
        assert isinstance(found, Attribution) and self.doc.image.prepared is not None
        view = self.doc.view.choice.valid()
        methods, signs, titles = figure_layout(view)
        image, target, attr = self.doc.image.prepared.rgb, Path(path), found.values
        suptitle = self.figure_title()
        labels = self.labels()

        def job(state: JobContext) -> Path:
            from ...export import save_figure

            return save_figure(target, attr, image, methods, signs, titles,
                               outlier_perc=view.outlier, suptitle=suptitle,
                               cmap=drawn_colormap(view), labels=labels)

        self._write(target, job, "Drawing the figure", lambda p: f"Saved the figure {p.name}")
        return None

    def shown_layer(self) -> str | None:
        """The model layer the shown map was computed at (None for the segment methods)."""
        doc = self.doc
        key = doc.store.key_for()
        result = doc.store.get(key) if key is not None else None
        layer = getattr(result, "layer", None)
        if layer is None and get_method(doc.analysis.method).takes_layer:
            layer = doc.analysis.layer or (doc.model.loaded.default_layer
                                           if doc.model.loaded is not None else None)
        return str(layer) if layer else None

    def figure_title(self) -> str:
        """What an exported figure shows: the class, the method, the layer, the model,
        and its weights when they mean nothing."""
        doc = self.doc
        pred, target, model = doc.store.prediction, doc.view.target, doc.model.loaded
        method = METHOD_LABELS[doc.analysis.method]
        what = (f"{method} of '{pred.categories[target]}'"
                if pred is not None and target is not None
                and get_method(doc.analysis.method).per_class else method)
        layer = self.shown_layer()
        if layer:
            what += f" at {layer}"
        if model is None:
            return what
        title = f"{what}; {model.name}"
        return title + " (UNTRAINED weights: meaningless)" if model.untrained else title

    def labels(self, view: bool = False) -> dict[str, str]:
        """What the exported image shows, for its metadata: the title, the image, the
        model and its weights; the class, method, layer, drawing and colour bar of the
        map when it is drawn (``view``: the canvas's layers too)."""
        from ...export.files import tick_text

        doc = self.doc
        model, pred, target = doc.model.loaded, doc.store.prediction, doc.view.target
        source, prepared = doc.image.source, doc.image.prepared
        labels: dict[str, str] = {"Title": self.figure_title()}
        if source is not None:
            labels["Image"] = source.label
        if prepared is not None:
            h, w = prepared.shape
            labels["Working size"] = f"{w} x {h} px"
        if model is not None:
            labels["Model"] = model.name
            labels["Weights"] = model.weights_label
        layers = doc.layers
        if view:
            labels["Layer shown"] = LAYER_LABELS[layers.chosen]
            under = [LAYER_LABELS[name] for name, on in layers.visible.items()
                     if on and name != layers.chosen and name != IMAGE]
            if under:
                labels["Layers under it"] = ", ".join(under)
            if ATTRIBUTION not in (layers.chosen, *[n for n, on in layers.visible.items()
                                                   if on]):
                labels["Title"] = f"{LAYER_LABELS[layers.chosen]}; {model.name}" \
                    if model is not None else LAYER_LABELS[layers.chosen]
                return labels
        method = get_method(doc.analysis.method)
        labels["Method"] = method.label
        if pred is not None and target is not None and method.per_class:
            labels["Class"] = f"'{pred.categories[target]}' (class {target})"
        layer = self.shown_layer()
        if layer:
            labels["Layer"] = layer
        choice = doc.analysis.choice
        if method.takes_segments:
            labels["Segments"] = SEGMENT_LABELS.get(choice.segments, choice.segments)
        if method.takes_baseline:
            labels["Baseline"] = dict(doc.analysis.baselines()).get(choice.baseline,
                                                                    choice.baseline)
        shown = doc.view.choice.valid()
        cmap = drawn_colormap(shown)
        labels["View"] = (f"{VIEW_LABELS[shown.view]}, {SIGN_LABELS[shown.sign].lower()}, "
                          f"{shown.outlier:g} % clipped"
                          + (f", colour map {cmap}" if cmap else "")
                          + ("; target segment hidden" if shown.hide_target else ""))
        found = attribution(doc)
        if not isinstance(found, str):
            from ...render.normalize import normalize_attr

            scale = normalize_attr(found.values, shown.sign, shown.outlier).scale
            low, high = ((-abs(scale), abs(scale)) if shown.sign == "all"
                         else (min(0.0, scale), max(0.0, scale)))
            labels["Colour bar"] = (f"{tick_text(low)} .. {tick_text(high)} (attribution "
                                    "units; values beyond are clipped)")
        return labels

    def all(self, folder: str | Path) -> None:
        """Write what ``segexplorer explain`` writes, with the results the document has:
        the seed's three methods (what is missing is computed first, and kept) and every
        other method computed for these choices (never recomputed)."""
        doc = self.doc
        session, predict, source = doc.store.session, doc.store.predict_key, doc.image.source
        if session is None or predict is None or source is None:
            return
        from ...engine.analysis import ExplainRequest
        from ...engine.methods import DEFAULT_METHODS

        choice, model = doc.analysis.choice, doc.model.choice
        computed = {}
        for name in OTHER_METHODS:
            maps = doc.store.method(method_key(predict, choice, name))
            if maps is not None:
                computed[name] = maps
        request = ExplainRequest(
            image=source.display_path, model=model.architecture, weights=model.weights,
            device=model.device, size=model.size, targets="all",
            methods=DEFAULT_METHODS + tuple(computed),
            layer=choice.layer or None, segments=choice.segments, baseline=choice.baseline,
            upsample=choice.upsample, aggregation=choice.aggregation,
            precision=session.precision, n_steps=choice.n_steps, ig_method=choice.ig_method,
            window=choice.window, stride=choice.stride, n_samples=choice.n_samples,
            shapley_mode=choice.shapley_mode)
        from ...export.bundle import DrawStyle

        view = doc.view.choice.valid()
        style = DrawStyle(view.view, view.sign, view.outlier, drawn_colormap(view))
        base = {key: value for key, value in self.labels().items()
                if key in ("Image", "Working size", "Model", "Weights")}
        doc.jobs.start(ExportAll(
            str(folder), predict, request, session,
            doc.store.gradcam(gradcam_key(predict, choice)),
            doc.store.sweep(sweep_key(predict, choice)), computed, style, base), force=True)

    def _all_job(self, export: ExportAll) -> Job:
        out = Path(export.folder)

        def job(state: JobContext) -> tuple[list[Path], ExplainResult]:
            from ...engine.analysis import explain_session
            from ...export import write_explain

            result = explain_session(export.session, export.request, state=state,
                                     gradcam=export.gradcam, sweep=export.sweep,
                                     computed=export.computed)
            return write_explain(out, result, export.style, export.labels), result

        # Not lending the model: Grad-CAM polls for cancellation while its hooks are set.
        return Job(job, "Exporting all")

    def _exported(self, export: ExportAll, value: Any) -> None:
        paths, result = cast("tuple[list[Path], ExplainResult]", value)
        choice = self.doc.analysis.choice
        if result.gradcam is not None:
            self.doc.store.put(gradcam_key(export.predict, choice), result.gradcam)
        if result.sweep is not None:
            self.doc.store.put(sweep_key(export.predict, choice), result.sweep)
        self.doc.saved.emit(Saved(f"Exported {len(paths)} files to {export.folder}",
                                  Path(export.folder)))

    def evaluation_curves(self, path: str | Path, every_target: bool = False) -> None:
        """The evaluation's curves (the target's, or every target's) as PNG, SVG or PDF."""
        result, target = self.doc.evaluation.result(), self.doc.view.target
        if result is None:
            return
        targets = (result.targets if every_target or target not in result.targets
                   else (target,))

        def write(out: Path) -> Path:
            from ...export.evaluation import save_curves

            return save_curves(out, result, targets)

        self._save_evaluation(Path(path), "curves", write)

    def evaluation_numbers(self, path: str | Path) -> None:
        """The evaluation's numbers, every target and method, as JSON or CSV."""
        result, context = self.doc.evaluation.result(), self.doc.evaluation.context()
        if result is None:
            return

        def write(out: Path) -> Path:
            from ...export.evaluation import save_numbers

            return save_numbers(out, result, context)

        self._save_evaluation(Path(path), "numbers", write)

    def _save_evaluation(self, out: Path, what: str, write: Callable[[Path], Path]) -> None:
        """Write one of the evaluation's files in a job; say where it went."""
        self._write(out, lambda state: write(out), f"Saving the {what}",
                    lambda p: f"Saved the {what} to {p.name}")

    def ablation(self, folder: str | Path, entry: AblationEntry | None = None) -> None:
        """Write what ``segexplorer ablate`` writes for the shown (or given) ablation."""
        doc = self.doc
        chosen = entry or doc.ablation.shown
        session = doc.store.session
        if chosen is None or session is None:
            return
        out = Path(folder)
        count: list[int] = []

        def job(state: JobContext) -> Path:
            from ...export.ablation import write_ablation

            count.append(len(write_ablation(out, session, chosen.segments, chosen.outcome)))
            return out

        self._write(out, job, "Exporting the ablation",
                    lambda p: f"Exported {count[0] if count else 0} files to {out}")

    def ablation_history(self, path: str | Path) -> None:
        """Every ablation of this image, as ``segexplorer ablate`` reports each, in one JSON."""
        doc = self.doc
        entries, session = doc.ablation.history, doc.store.session
        if not entries or session is None:
            return
        target, source = Path(path), doc.image.label

        def job(state: JobContext) -> Path:
            from ...export import save_json
            from ...export.ablation import ablation_report

            reports = []
            for entry in entries:
                report = ablation_report(session, entry.segments, entry.outcome)
                report["label"] = entry.label
                reports.append(report)
            return save_json(target, {"image": source, "ablations": reports})

        self._write(target, job, "Exporting the ablation history",
                    lambda p: f"Saved {len(entries)} ablations to {p.name}")
