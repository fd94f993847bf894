"""What a new user hit (issue 13), as tests of the document, the exports and the CLI.

Each test failed on main at 4f62e21 (checked before the fix, with the same test body
where the API allowed, or by the behaviour it asserts); the window-side defects are in
tests/gui/test_new_user.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_document import make_doc, opened
from tiny_models import TINY

from segexplorer.cli import main as cli_main
from segexplorer.engine.errors import UserError
from segexplorer.engine.models import load_model
from segexplorer.gui.document.choices import ABLATION, ACTIVATION
from segexplorer.gui.document.document import window_wording
from segexplorer.gui.document.presenter import format_share


class Evil:
    """Unpickling this would run ``touch MARKER`` (nothing ever unpickles it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


# 4 ------------------------------------------------------------------------------------
def test_a_refused_weights_file_leaves_the_loaded_model_selected(blocks_image, tmp_path):
    doc, runner, presenter, events = opened(blocks_image)
    loaded = doc.model_choice
    evil = tmp_path / "evil.pth"
    torch.save({"body.0.weight": torch.zeros(1), "x": Evil(tmp_path / "MARKER")}, evil)
    doc.set_model_choice(replace(loaded, weights=str(evil)))
    runner.run_until_idle()
    assert len(events["failed"]) == 1 and "evil.pth" in events["failed"][0].message
    assert not (tmp_path / "MARKER").exists()
    assert doc.model_choice == loaded  # the controls show what is loaded
    assert doc.model is not None and doc.model.weights == "untrained"
    assert doc.prediction is not None  # the previous model's results stay, and match


# 5 ------------------------------------------------------------------------------------
def test_a_cancelled_first_prediction_can_be_run_again(blocks_image):
    doc, runner, presenter, _ = make_doc()
    doc.open_image(blocks_image)
    while runner.pending() != ["predict"]:
        assert runner.run_next()
    doc.cancel_all()
    view = presenter.present(doc)
    assert view.can_compute, "Compute must run the cancelled prediction again"
    assert "Press Compute" in view.explain_status
    doc.compute()
    assert runner.pending() == ["predict"]
    runner.run_until_idle()
    assert doc.prediction is not None


# 7 ------------------------------------------------------------------------------------
def test_options_that_do_not_apply_to_the_method_run_no_job(blocks_image):
    doc, runner, presenter, _ = opened(blocks_image)
    doc.update_analysis(method=ACTIVATION)
    assert not runner.pending()  # the Grad-CAM pass also gave the activation
    doc.update_analysis(upsample="bilinear")  # Grad-CAM's upsampling: not the activation's
    doc.update_analysis(aggregation="sum")  # nor its class score
    assert not runner.pending()
    assert presenter.present(doc).footer.kind == "colorbar"
    doc.update_analysis(method=ABLATION)
    runner.run_until_idle()
    doc.update_analysis(layer="body.0", upsample="nearest")  # layers mean nothing here
    assert not runner.pending()


# 10 -----------------------------------------------------------------------------------
def test_the_preview_shows_its_classes_and_its_target(blocks_image):
    doc, runner, presenter, _ = make_doc(size=352)
    doc.open_image(blocks_image)
    seen = []

    def look(job):
        if doc.preview.result is not None and doc.prediction is None:
            seen.append(presenter.present(doc))
        return False

    runner.cancel_during = look
    runner.run_until_idle()
    assert seen, "no preview was shown"
    view = seen[0]
    preview = doc.preview.shown_count and view.classes
    assert preview is not None and preview.present_classes  # the class list is filled
    assert "none yet" not in view.target_html
    assert view.target in preview.present_classes
    assert preview.categories[view.target] in view.target_html


# 11 -----------------------------------------------------------------------------------
def test_the_ablation_panel_does_not_ask_for_an_image_that_is_open(blocks_image):
    doc, runner, presenter, _ = make_doc()
    doc.open_image(blocks_image)
    while doc.prepared is None:
        assert runner.run_next()
    assert "Open an image" not in presenter.present(doc).ablation.sweep_text


def test_window_messages_name_window_controls_not_cli_flags():
    with pytest.raises(UserError) as caught:
        load_model("lraspp_mobilenet_v3_large", "default", "cpu", allow_download=False)
    assert "--weights" in str(caught.value)  # the CLI's wording
    worded = window_wording(str(caught.value))
    assert "--" not in worded
    assert "Load weights file..." in worded and "Untrained (demo)" in worded
    assert "--" not in window_wording("Could not move the model to cuda: boom. Try "
                                      "--device cpu.")


# 14 -----------------------------------------------------------------------------------
def test_the_title_leaves_the_app_name_to_qt_and_tiny_shares_are_not_zero(blocks_image):
    doc, runner, presenter, _ = opened(blocks_image)
    assert presenter.present(doc).title == "blocks.png [untrained weights]"
    assert format_share(0.00004) == "<0.01 %"
    assert format_share(0.0005) == "0.05 %" and format_share(0.25) == "25.0 %"
    assert format_share(0.0) == "0 %"


# 13 -----------------------------------------------------------------------------------
def test_export_all_names_files_by_class_name_and_keeps_the_npz_keys(blocks_image, tmp_path):
    out = tmp_path / "out"
    assert cli_main(["explain", str(blocks_image), "--model", TINY, "--weights", "untrained",
                     "--device", "cpu", "--size", "64", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    names = {p.name for p in out.iterdir()}
    for c in report["present_classes"]:
        slug = re.sub(r"[^a-z0-9]+", "", report["class_names"][c].lower())
        assert f"gradcam_{c}_{slug}.png" in names
        assert f"ablation_{c}_{slug}.png" in names
    with np.load(out / "attributions.npz") as npz:
        assert {f"gradcam_{c}" for c in report["present_classes"]} <= set(npz.files)


def _embedded_pngs(svg: str) -> list[np.ndarray]:
    data = re.findall(r'data:image/png;base64,([A-Za-z0-9+/=\s]+)"', svg)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(d)))) for d in data]


def test_vector_figures_draw_the_heat_map_as_the_png_does(blocks_image, tmp_path):
    """matplotlib composites overlapping images in vector backends (image.composite_image),
    which changed the heat map's strength: the SVG must keep the 50 % heat map layer."""
    doc, runner, presenter, _ = opened(blocks_image)
    from segexplorer.gui.document.exports import Exports

    exports = Exports(doc, presenter)
    assert exports.figure(tmp_path / "figure.svg") is None
    runner.run_until_idle()
    svg = (tmp_path / "figure.svg").read_text()
    alphas = [set(np.unique(i[..., 3])) for i in _embedded_pngs(svg)
              if i.ndim == 3 and i.shape[2] == 4]
    assert {127} in alphas  # Captum's alpha_overlay 0.5, as matplotlib hands it to Agg
    # and the figure says what it shows: class, method, model, untrained
    name = doc.prediction.categories[doc.target]
    for text in (name, "Layer Grad-CAM", TINY, "UNTRAINED"):
        assert text in svg, text

