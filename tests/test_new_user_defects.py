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
from test_document import make_doc, opened, present
from tiny_models import TINY

from segexplorer.cli import main as cli_main
from segexplorer.engine.errors import UserError
from segexplorer.engine.models import load_model
from segexplorer.gui.document.choices import ABLATION, ACTIVATION
from segexplorer.gui.document.formatting import format_share
from segexplorer.gui.document.messages import window_wording


class Evil:
    """Unpickling this would run ``touch MARKER`` (nothing ever unpickles it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


# 4 ------------------------------------------------------------------------------------
def test_a_refused_weights_file_leaves_the_loaded_model_selected(blocks_image, tmp_path):
    doc, runner, drawings, events = opened(blocks_image)
    loaded = doc.model.choice
    evil = tmp_path / "evil.pth"
    torch.save({"body.0.weight": torch.zeros(1), "x": Evil(tmp_path / "MARKER")}, evil)
    doc.model.set(replace(loaded, weights=str(evil)))
    runner.run_until_idle()
    assert len(events["failed"]) == 1 and "evil.pth" in events["failed"][0].message
    assert not (tmp_path / "MARKER").exists()
    assert doc.model.choice == loaded  # the controls show what is loaded
    assert doc.model.loaded is not None and doc.model.loaded.weights == "untrained"
    assert doc.store.prediction is not None  # the previous model's results stay, and match


# 5 ------------------------------------------------------------------------------------
def test_a_cancelled_first_prediction_can_be_run_again(blocks_image):
    doc, runner, drawings, _ = make_doc()
    doc.image.open(blocks_image)
    while runner.pending() != ["predict"]:
        assert runner.run_next()
    doc.cancel_all()
    view = present(doc, drawings)
    assert view.explain.can_compute, "Compute must run the cancelled prediction again"
    assert "Press Compute" in view.explain.status
    doc.compute()
    assert runner.pending() == ["predict"]
    runner.run_until_idle()
    assert doc.store.prediction is not None


# 7 ------------------------------------------------------------------------------------
def test_options_that_do_not_apply_to_the_method_run_no_job(blocks_image):
    doc, runner, drawings, _ = opened(blocks_image)
    doc.analysis.update(method=ACTIVATION)
    assert not runner.pending()  # the Grad-CAM pass also gave the activation
    doc.analysis.update(upsample="bilinear")  # Grad-CAM's upsampling: not the activation's
    doc.analysis.update(aggregation="sum")  # nor its class score
    assert not runner.pending()
    assert present(doc, drawings).area.footer.kind == "colorbar"
    doc.analysis.update(method=ABLATION)
    runner.run_until_idle()
    doc.analysis.update(layer="body.0", upsample="nearest")  # layers mean nothing here
    assert not runner.pending()


# 10 -----------------------------------------------------------------------------------
def test_the_preview_shows_its_classes_and_its_target(blocks_image):
    doc, runner, drawings, _ = make_doc(size=352)
    doc.image.open(blocks_image)
    seen = []

    def look(job):
        if doc.preview.result is not None and doc.store.prediction is None:
            seen.append(present(doc, drawings))
        return False

    runner.cancel_during = look
    runner.run_until_idle()
    assert seen, "no preview was shown"
    view = seen[0]
    preview = doc.preview.shown_count and view.classes.classes
    assert preview is not None and preview.present_classes  # the class list is filled
    assert "none yet" not in view.explain.target_html
    assert view.classes.target in preview.present_classes
    assert preview.categories[view.classes.target] in view.explain.target_html


# 11 -----------------------------------------------------------------------------------
def test_the_ablation_panel_does_not_ask_for_an_image_that_is_open(blocks_image):
    doc, runner, drawings, _ = make_doc()
    doc.image.open(blocks_image)
    while doc.image.prepared is None:
        assert runner.run_next()
    assert "Open an image" not in present(doc, drawings).ablation.sweep_text


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
    doc, runner, drawings, _ = opened(blocks_image)
    assert present(doc, drawings).chrome.title == "blocks.png [untrained weights]"
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
    doc, runner, drawings, _ = opened(blocks_image)
    from segexplorer.gui.document.exports import Exports

    exports = Exports(doc)
    assert exports.figure(tmp_path / "figure.svg") is None
    runner.run_until_idle()
    svg = (tmp_path / "figure.svg").read_text()
    alphas = [set(np.unique(i[..., 3])) for i in _embedded_pngs(svg)
              if i.ndim == 3 and i.shape[2] == 4]
    assert {127} in alphas  # Captum's alpha_overlay 0.5, as matplotlib hands it to Agg
    # and the figure says what it shows: class, method, model, untrained
    name = doc.store.prediction.categories[doc.view.target]
    for text in (name, "Layer Grad-CAM", TINY, "UNTRAINED"):
        assert text in svg, text



@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    arr = np.full((64, 64, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)  # red: class 1 for the colour model
    arr[40:56, 36:60] = (20, 220, 20)  # green: class 2
    path = tmp_path_factory.mktemp("defects") / "squares.png"
    Image.fromarray(arr).save(path)
    return path


# 9 -----------------------------------------------------------------------------------
def test_the_ablation_history_is_kept_per_model_and_size(squares):
    doc, runner, drawings, _ = opened(squares, "colour")
    doc.ablation.click(15, 15)
    runner.run_until_idle()
    assert [e.selection.ids for e in doc.ablation.history] == [(1,)]
    doc.model.set(replace(doc.model.choice, size=48))
    runner.run_until_idle()
    assert doc.store.prediction.shape == (48, 48) and doc.ablation.history == []
    doc.model.set(replace(doc.model.choice, size=64))
    runner.run_until_idle()
    assert [e.selection.ids for e in doc.ablation.history] == [(1,)]  # back again


# 3 (in part) -------------------------------------------------------------------------
def test_the_working_size_actually_used_is_said(tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tiny)
    doc, runner, drawings, _ = opened(tiny, size=64)
    note = present(doc, drawings).model.working_note
    assert "64 x 64" in note and "enlarged 8x" in note
    panorama = tmp_path / "panorama.png"
    Image.fromarray(np.full((300, 4000, 3), 90, np.uint8)).save(panorama)
    doc, runner, drawings, _ = opened(panorama, size=32)
    note = present(doc, drawings).model.working_note
    assert "128 x 9" in note and "4 times" in note


# asked for: save and reopen a session -------------------------------------------------
def test_a_session_is_saved_and_reopened_with_its_choices_and_history(squares, tmp_path):
    from segexplorer.gui.document.sessions import open_session, save

    doc, runner, _, events = opened(squares, "colour")
    doc.view.update(sign="positive")
    doc.view.target = 2
    doc.ablation.click(15, 15)
    runner.run_until_idle()
    doc.ablation.click(45, 48, add=True)
    runner.run_until_idle()
    doc.ablation.show_history(0)
    path = tmp_path / "work.segx"
    save(doc, path)
    runner.run_until_idle()
    assert events["saved"][-1].path == path
    squares.rename(tmp_path / "moved.png")  # the file travels alone: the image is inside
    try:
        other, runner2, drawings2, failures = make_doc()
        open_session(other, path)
        runner2.run_until_idle()
    finally:
        (tmp_path / "moved.png").rename(squares)
    assert not failures["failed"]
    assert other.model.choice.architecture == "colour" and other.view.sign == "positive"
    assert other.view.target == 2 and other.image.source.label == "squares.png"
    assert [e.selection.ids for e in other.ablation.history] == [(1,), (1, 2)]
    assert other.ablation.active and other.ablation.shown.selection.ids == (1,)
    np.testing.assert_array_equal(other.ablation.shown.outcome.after,
                                  doc.ablation.history[0].outcome.after)
    bad = tmp_path / "bad.segx"
    bad.write_text("{}")
    with pytest.raises(UserError, match="not a SegExplorer session file"):
        open_session(other, bad)


# asked for: a colour map for heat maps -------------------------------------------------
def test_a_chosen_colour_map_reaches_the_canvas_the_colour_bar_and_the_panels(blocks_image):
    from segexplorer.render import render_attribution

    doc, runner, drawings, _ = opened(blocks_image)
    gradcam = doc.store.gradcam_for()
    doc.view.update(colormap="viridis", sign="positive")
    view = present(doc, drawings)
    expected = render_attribution(gradcam.upsampled[doc.view.target], doc.image.prepared.rgb,
                                  "blended_heat_map", "positive", cmap="viridis").rgba
    np.testing.assert_array_equal(view.area.canvas.overlay, expected)
    assert view.area.footer.colormap == "viridis"
    doc.view.update(side_by_side=True)
    assert [p.colormap for p in present(doc, drawings).area.panels[1:]] == ["viridis"] * 3
    assert not runner.pending()  # a view choice: no job


# asked for: undo and redo of ablation steps ---------------------------------------------
def test_ablation_steps_undo_and_redo_without_computing_again(squares):
    doc, runner, drawings, _ = opened(squares, "colour")
    ablation = doc.ablation
    assert not ablation.can_undo()
    ablation.click(15, 15)
    runner.run_until_idle()
    ablation.click(45, 48, add=True)
    runner.run_until_idle()
    started = runner.started_count

    def ids():
        return None if ablation.selection is None else ablation.selection.ids

    assert ids() == (1, 2) and present(doc, drawings).ablation.can_undo
    assert ablation.undo() and ids() == (1,)
    assert ablation.undo() and ids() is None and ablation.shown is None
    assert not ablation.undo()
    assert ablation.redo() and ids() == (1,)
    assert ablation.redo() and ids() == (1, 2) and not ablation.can_redo()
    assert runner.started_count == started and not runner.pending()  # from the history
    ablation.undo()
    ablation.click(45, 48)  # a new step forgets what could be redone
    runner.run_until_idle()
    assert ids() == (2,) and not ablation.can_redo()
    assert ablation.undo() and ids() == (1,)


# asked for: draw a region to ablate ----------------------------------------------------
def test_a_drawn_region_is_ablated_and_takes_part_in_undo(squares):
    doc, runner, drawings, _ = opened(squares, "colour")
    ablation = doc.ablation
    # a lasso around the left half of the red square (8..24 x 8..24)
    ablation.draw_region("lasso", [(8, 8), (15.5, 8), (15.5, 24), (8, 24)])
    runner.run_until_idle()
    entry = ablation.shown
    assert entry is not None and entry.selection.kind.startswith("region")
    inside = entry.segments.ids == 1
    assert inside[10, 10] and not inside[10, 20] and not inside[40, 40]
    after, before = entry.outcome.class_map_after, doc.store.prediction.class_map
    assert (after[inside & (before == 1)] == 0).all()  # the red pixels inside are gone
    assert (after[~inside] == before[~inside]).all()  # nothing else changed
    assert "drawn region (mostly aeroplane)" in entry.label
    # a brush stroke over the green block: another region, another step
    ablation.draw_region("brush", [(40, 48), (55, 48)], radius=3)
    runner.run_until_idle()
    brushed = ablation.shown.segments.ids == 1
    assert brushed[48, 47] and not brushed[40, 47] and 90 < brushed.sum() < 170  # ~22 x 7
    assert ablation.undo() and ablation.shown is entry
    doc.analysis.update(baseline="black")  # the same region, another baseline
    runner.run_until_idle()
    assert ablation.shown.selection.kind == entry.selection.kind
    assert ablation.shown.selection.baseline == "black"


# asked for: a layers list with visibility and opacity ------------------------------------
def test_layers_are_shown_together_each_at_its_own_opacity(blocks_image):
    from segexplorer.render import decode_segmap

    doc, runner, drawings, _ = opened(blocks_image)
    assert present(doc, drawings).area.canvas.under == ()  # the chosen layer alone, by default
    doc.layers.set_visible("segmentation", True)
    doc.layers.set_opacity(0.3, "segmentation")
    view = present(doc, drawings)
    (array, opacity), = view.area.canvas.under
    np.testing.assert_array_equal(array, decode_segmap(doc.store.prediction.class_map))
    assert opacity == 0.3 and view.area.canvas.overlay is not None  # the explanation on top
    assert view.layers.visible["segmentation"] and view.layers.opacities["segmentation"] == 0.3
    doc.layers.set_visible("image", False)
    assert present(doc, drawings).area.canvas.base_visible is False
    doc.layers.chosen = "segmentation"  # the chosen layer is never drawn twice
    assert present(doc, drawings).area.canvas.under == ()
    assert not runner.pending()
