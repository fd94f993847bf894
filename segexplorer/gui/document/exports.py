"""The document's exports: the view, a figure, everything ``explain`` writes, ablations.

Each export is a job (files are written atomically, off the GUI thread) that ends with
the document's ``saved`` event. The window only picks the paths (dialogs) and composes
what its canvas shows; the writing is ``segexplorer.export``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from .choices import (
    ACTIVATION,
    METHOD_LABELS,
    OTHER_METHODS,
    SIGN_LABELS,
    VIEW_LABELS,
    ViewChoice,
    view_for_sign,
)
from .messages import Saved
from .planner import gradcam_key, method_key, sweep_key
from .presenter import Attribution, Presenter
from .runner import JobContext

if TYPE_CHECKING:
    from ...engine.analysis import ExplainResult
    from .ablation import AblationEntry
    from .document import Document


def figure_layout(view: ViewChoice) -> tuple[list[str], list[str], list[str]]:
    """(methods, signs, titles) of the exported figure: the image, then the view with
    both signs (or its fallback), positive and negative."""
    method = view.view
    methods = ["original_image", view_for_sign(method, "all"), method, method]
    signs = ["all", "all", "positive", "negative"]
    titles = ["Image"] + [f"{VIEW_LABELS[m]}, {SIGN_LABELS[s].lower()}"
                          for m, s in zip(methods[1:], signs[1:], strict=True)]
    return methods, signs, titles


class Exports:
    """Export jobs of one document."""

    def __init__(self, document: Document, presenter: Presenter) -> None:
        self.doc = document
        self.presenter = presenter
        self.last_saved: Path | None = None

    def _saved(self, message: str, path: Path) -> None:
        self.last_saved = Path(path)
        self.doc.saved.emit(Saved(message, Path(path)))

    def default_name(self, folder: str, suffix: str) -> str:
        source = self.doc.source
        stem = Path(source.label).stem if source is not None else "segexplorer"
        stem = stem.strip("<>") or "image"
        return str(Path(folder) / f"{stem}_{self.doc.canvas_layer}{suffix}")

    def view(self, path: str | Path, rgba: np.ndarray) -> None:
        """Save ``rgba`` (what the window shows) as a PNG."""
        target = Path(path)

        def job(state: JobContext) -> Path:
            from ...export import save_png

            return save_png(target, rgba)

        # one channel per file: exports to different files never cancel one another
        self.doc.submit(f"save:{target}", (str(target), id(rgba)), job,
                        lambda p: self._saved(f"Saved {Path(str(p)).name}", Path(str(p))),
                        label="Saving the view", uses_model=False, force=True)

    def figure(self, path: str | Path) -> str | None:
        """The attribution as Captum draws it; returns why not, or None."""
        attribution = self.presenter.attribution(self.doc)
        if isinstance(attribution, str):
            return attribution
        assert isinstance(attribution, Attribution) and self.doc.prepared is not None
        view = self.doc.view
        methods, signs, titles = figure_layout(view)
        image, target, attr = self.doc.prepared.rgb, Path(path), attribution.values
        suptitle = self.figure_title()

        def job(state: JobContext) -> Path:
            from ...export import save_figure

            return save_figure(target, attr, image, methods, signs, titles,
                               outlier_perc=view.outlier, suptitle=suptitle,
                               cmap=view.colormap or None)

        self.doc.submit(f"figure:{target}", (str(target),), job,
                        lambda p: self._saved(f"Saved the figure {Path(str(p)).name}",
                                              Path(str(p))),
                        label="Drawing the figure", uses_model=False, force=True)
        return None

    def figure_title(self) -> str:
        """What an exported figure shows: the class, the method, the model, and its
        weights when they mean nothing."""
        doc = self.doc
        pred, target, model = doc.prediction, doc.target, doc.model
        method = METHOD_LABELS[doc.analysis.method]
        what = (f"{method} of '{pred.categories[target]}'"
                if pred is not None and target is not None and doc.analysis.method != ACTIVATION
                else method)
        if model is None:
            return what
        title = f"{what}; {model.name}"
        return title + " (UNTRAINED weights: meaningless)" if model.untrained else title

    def all(self, folder: str | Path) -> None:
        """Write what ``segexplorer explain`` writes, with the results the document has:
        the seed's three methods (what is missing is computed first, and kept) and every
        other method computed for these choices (never recomputed)."""
        doc = self.doc
        session, predict, source = doc.session, doc.predict_key, doc.source
        if session is None or predict is None or source is None:
            return
        from ...engine.analysis import ExplainRequest
        from ...engine.methods import DEFAULT_METHODS

        choice, model = doc.analysis, doc.model_choice
        gkey, skey = gradcam_key(predict, choice), sweep_key(predict, choice)
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
        gradcam, sweep, out = doc.store.gradcam(gkey), doc.store.sweep(skey), Path(folder)

        def job(state: JobContext) -> tuple[list[Path], ExplainResult]:
            from ...engine.analysis import explain_session
            from ...export import write_explain

            result = explain_session(session, request, state=state, gradcam=gradcam,
                                     sweep=sweep, computed=computed)
            return write_explain(out, result), result

        def done(value: object) -> None:
            paths, result = cast("tuple[list[Path], ExplainResult]", value)
            if result.gradcam is not None:
                doc.store.put(gkey, result.gradcam)
            if result.sweep is not None:
                doc.store.put(skey, result.sweep)
            self._saved(f"Exported {len(paths)} files to {out}", out)

        # Not lending the model: Grad-CAM polls for cancellation while its hooks are set.
        doc.submit("export", (str(out), predict), job, done, label="Exporting all",
                   force=True)

    def evaluation_curves(self, path: str | Path, every_target: bool = False) -> None:
        """The evaluation's curves (the target's, or every target's) as PNG, SVG or PDF."""
        result, target = self.doc.evaluation.result(), self.doc.target
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
        self.doc.submit(f"export:{out}", str(out), lambda state: write(out),
                        lambda p: self._saved(f"Saved the {what} to {Path(str(p)).name}",
                                              Path(str(p))),
                        label=f"Saving the {what}", uses_model=False, force=True)

    def ablation(self, folder: str | Path, entry: AblationEntry | None = None) -> None:
        """Write what ``segexplorer ablate`` writes for the shown (or given) ablation."""
        doc = self.doc
        chosen = entry or doc.ablation.shown
        session = doc.session
        if chosen is None or session is None:
            return
        out = Path(folder)

        def job(state: JobContext) -> list[Path]:
            from ...export.ablation import write_ablation

            return write_ablation(out, session, chosen.segments, chosen.outcome)

        doc.submit(f"export_ablation:{out}", (str(out), id(chosen)), job,
                   lambda paths: self._saved(f"Exported {len(paths)} files to {out}",  # type: ignore[arg-type]
                                             out),
                   label="Exporting the ablation", uses_model=False, force=True)

    def ablation_history(self, path: str | Path) -> None:
        """Every ablation of this image, as ``segexplorer ablate`` reports each, in one JSON."""
        doc = self.doc
        entries, session = doc.ablation.history, doc.session
        if not entries or session is None:
            return
        target, source = Path(path), doc.image_label()

        def job(state: JobContext) -> Path:
            from ...export import save_json
            from ...export.ablation import ablation_report

            reports = []
            for entry in entries:
                report = ablation_report(session, entry.segments, entry.outcome)
                report["label"] = entry.label
                reports.append(report)
            return save_json(target, {"image": source, "ablations": reports})

        doc.submit(f"export_ablation:{target}", (str(target), len(entries)), job,
                   lambda p: self._saved(f"Saved {len(entries)} ablations to "
                                         f"{Path(str(p)).name}", Path(str(p))),
                   label="Exporting the ablation history", uses_model=False, force=True)
