"""The window's exports: the view (PNG, clipboard), a figure (PNG/SVG/PDF), everything.

A mixin of :class:`~segexplorer.gui.main_window.MainWindow` (it uses the window's state,
jobs and dialogs); the writing itself is ``segexplorer.export``'s, in worker jobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from .imaging import from_qimage, to_qimage
from .options import SIGN_LABELS, SIGNED_ONLY_VIEWS, VIEW_LABELS


class ExportsMixin:
    """Export actions of the main window."""

    def current_view_image(self) -> np.ndarray | None:
        """What the window shows, as H x W x 4 RGBA at native (working) resolution."""
        if self.view_choice.side_by_side and self.multi_view.panels():
            return self.multi_view.compose()
        image = self.canvas.compose()
        return from_qimage(image) if image is not None else None

    def _default_name(self, suffix: str) -> str:
        stem = Path(self._source.label).stem if self._source else "segexplorer"
        stem = stem.strip("<>") or "image"
        return str(Path(self.prefs.last_folder) / f"{stem}_{self._layer}{suffix}")

    def choose_export_view(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export view as PNG",
                                              self._default_name(".png"), "PNG image (*.png)")
        if path:
            self.export_view(path if path.lower().endswith(".png") else path + ".png")

    def export_view(self, path: str | Path) -> None:
        """Save the current view as a PNG (in a worker: writes are atomic)."""
        rgba = self.current_view_image()
        if rgba is None:
            return
        path = Path(path)

        def job(state):
            from ..export import save_png

            return save_png(path, rgba)

        self._request("save", (str(path), id(rgba)), job,
                      lambda p: self._saved(f"Saved {Path(p).name}", p),
                      label="Saving the view", uses_model=False, force=True)

    def copy_view(self) -> None:
        rgba = self.current_view_image()
        if rgba is None:
            return
        QGuiApplication.clipboard().setImage(to_qimage(rgba))
        self.statusBar().showMessage(
            f"Copied the view ({rgba.shape[1]} x {rgba.shape[0]} px) to the clipboard.", 4000)

    def choose_export_figure(self) -> None:
        path, selected = QFileDialog.getSaveFileName(
            self, "Export figure", self._default_name(".png"),
            "PNG image (*.png);;SVG drawing (*.svg);;PDF document (*.pdf)")
        if path:
            if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
                path += "." + selected.split("*.")[-1].rstrip(")")
            self.export_figure(path)

    def export_figure(self, path: str | Path) -> None:
        """The attribution as Captum draws it: image and the view with each sign."""
        attribution = self._attribution()
        if isinstance(attribution, str):
            self._show_error(attribution, "")
            return
        attr, caption, _ = attribution
        view = self.view_choice
        method = view.view
        all_method = "blended_heat_map" if method in SIGNED_ONLY_VIEWS else method
        methods = ["original_image", all_method, method, method]
        signs = ["all", "all", "positive", "negative"]
        titles = ["Image"] + [f"{VIEW_LABELS[m]}, {SIGN_LABELS[s].lower()}"
                              for m, s in zip(methods[1:], signs[1:])]
        image, path = self._prepared.rgb, Path(path)

        def job(state):
            from ..export import save_figure

            return save_figure(path, attr, image, methods, signs, titles,
                               outlier_perc=view.outlier)

        self._request("figure", (str(path),), job,
                      lambda p: self._saved(f"Saved the figure {Path(p).name}", p),
                      label="Drawing the figure", uses_model=False, force=True)

    def choose_export_all(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export all into folder",
                                                  self.prefs.last_folder)
        if folder:
            self.export_all(folder)

    def export_all(self, folder: str | Path) -> None:
        """Write what ``segexplorer explain`` writes (computing what is missing first)."""
        if self._session is None:
            return
        session, prediction, model = self._session, self._prediction, self._model
        choice, source = self.analysis_choice, self._source
        gkey, skey, pkey = self._gradcam_key(choice), self._sweep_key(choice), self._predict_key
        gradcam, sweep = self._gradcams.get(gkey), self._sweeps.get(skey)
        size = self.model_choice.size
        folder = Path(folder)

        def job(state):
            from ..engine.aggregation import Aggregation
            from ..engine.analysis import METHODS, ExplainResult
            from ..engine.devices import describe_device
            from ..engine.segments import make_segments
            from ..export import write_explain

            agg = Aggregation(choice.aggregation)
            g = gradcam or session.gradcam(None, choice.layer or None, agg, choice.upsample,
                                           state)
            s = sweep or session.sweep(make_segments(prediction.class_map, choice.segments),
                                       choice.baseline, agg, state)
            result = ExplainResult(
                image_path=source.path or source.label, model=model.name,
                weights=model.weights, untrained=model.untrained,
                device=describe_device(model.device), size=size, prediction=prediction,
                targets=tuple(prediction.present_classes), gradcam=g, sweep=s,
                methods=METHODS, forward_passes=session.forward_passes,
                precision=session.precision)
            return write_explain(folder, result), g, s

        def done(result):
            paths, g, s = result
            if pkey == self._predict_key:
                self._gradcams.setdefault(gkey, g)
                self._sweeps.setdefault(skey, s)
            self.prefs.last_folder = str(folder)
            self._saved(f"Exported {len(paths)} files to {folder}", folder)

        # Not lending the model: Grad-CAM polls for cancellation while its hooks are set.
        self._request("export", (str(folder), pkey), job, done, label="Exporting all",
                      force=True)

    def _saved(self, message: str, path) -> None:
        self.last_saved = Path(path)
        self.statusBar().showMessage(message, 6000)
