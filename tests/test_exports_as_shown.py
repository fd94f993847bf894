"""Exports draw what the window shows, labelled (issue 26, item 9), and the Evaluate
panel's smaller defects (item 14): exact ties, the sign of a Spearman.

Through the document, no Qt. Each test failed on main at 7f219e3 (run against that tree).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from test_document import opened, present

from segexplorer.engine.evaluation import MprtStage
from segexplorer.export.evaluation import evaluation_csv
from segexplorer.gui.document.exports import Exports
from segexplorer.gui.document.formatting import format_value
from segexplorer.gui.document.panel_views import evaluation_view
from segexplorer.render import colorbar_ticks


def png_text(path) -> dict[str, str]:
    with Image.open(path) as image:
        image.load()
        return dict(image.text)


def export_figure(doc, runner, path):
    assert Exports(doc).figure(path) is None
    runner.run_until_idle()
    return path


def shown_layer(doc) -> str:
    return doc.analysis.layer or doc.model.loaded.default_layer


# 9 ------------------------------------------------------------------------------------
def test_the_figure_is_the_one_map_shown_unless_side_by_side_is_on(blocks_image, tmp_path):
    doc, runner, drawings, _ = opened(blocks_image)
    one = export_figure(doc, runner, tmp_path / "one.png")
    with Image.open(one) as image:
        assert image.width / image.height < 1.6  # one panel, not four in a row
    doc.view.update(side_by_side=True)
    four = export_figure(doc, runner, tmp_path / "four.png")
    with Image.open(four) as image:
        assert image.width / image.height > 2.5


def test_the_figure_is_titled_with_the_layer_and_its_colour_bar_reads_the_windows_units(
        blocks_image, tmp_path):
    doc, runner, drawings, _ = opened(blocks_image)
    footer = present(doc, drawings).area.footer
    assert footer.kind == "colorbar" and footer.normalized.scale not in (0, 1)
    window_ticks = [format_value(v) for _, v in colorbar_ticks(footer.normalized, 5)]
    svg = export_figure(doc, runner, tmp_path / "figure.svg").read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    for tick in window_ticks:  # the window's labels, in its units (not -1..1)
        assert tick in texts, (tick, texts)
    layer = shown_layer(doc)
    title = next(t for t in texts if "Layer Grad-CAM of" in t)
    assert f"at {layer}" in title


def test_every_figure_format_names_what_it_shows_in_its_metadata(blocks_image, tmp_path):
    doc, runner, _, _ = opened(blocks_image)
    layer, model = shown_layer(doc), doc.model.loaded.name
    chunks = png_text(export_figure(doc, runner, tmp_path / "figure.png"))
    assert chunks["Software"].startswith("SegExplorer")
    assert chunks["Method"] == "Layer Grad-CAM" and chunks["Layer"] == layer
    assert chunks["Model"] == model and "untrained" in chunks["Weights"].lower()
    assert chunks["Class"].startswith(f"'{doc.store.prediction.categories[doc.view.target]}'")
    assert ".." in chunks["Colour bar"]
    pdf = export_figure(doc, runner, tmp_path / "figure.pdf").read_bytes()
    info = pdf[pdf.index(b"/Creator"):][:2000]
    assert b"SegExplorer" in info and layer.encode() in pdf and b"Layer Grad-CAM" in pdf
    svg = export_figure(doc, runner, tmp_path / "figure.svg").read_text()
    assert re.search(r"<dc:title>[^<]*Layer Grad-CAM[^<]*</dc:title>", svg)
    assert re.search(rf"<dc:description>[^<]*Layer: {re.escape(layer)}", svg)
    assert "SegExplorer" in svg.split("</metadata>")[0]


def test_the_view_png_carries_its_labels(blocks_image, tmp_path):
    doc, runner, drawings, _ = opened(blocks_image)
    rgba = np.zeros((8, 8, 4), np.uint8)
    Exports(doc).view(tmp_path / "view.png", rgba)
    runner.run_until_idle()
    chunks = png_text(tmp_path / "view.png")
    assert chunks["Model"] == doc.model.loaded.name
    assert chunks["Image"] and chunks["Layer shown"] and chunks["Method"] == "Layer Grad-CAM"


def test_export_all_draws_the_maps_as_the_window_does(blocks_image, tmp_path):
    doc, runner, drawings, _ = opened(blocks_image)
    doc.view.update(colormap="magma")
    shown = present(doc, drawings).area.canvas.overlay  # what the canvas draws
    Exports(doc).all(tmp_path / "all")
    runner.run_until_idle()
    target = doc.view.target
    name = next(p for p in (tmp_path / "all").glob(f"gradcam_{target}_*.png"))
    with Image.open(name) as image:
        drawn = np.asarray(image.convert("RGBA"))
    assert drawn.shape[:2] == shown.shape[:2]
    expected = shown if shown.shape[2] == 4 else np.dstack(
        [shown, np.full(shown.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(drawn, expected)
    chunks = png_text(name)
    assert "colour map magma" in chunks["View"]
    assert chunks["Layer"] == shown_layer(doc) and chunks["Method"] == "Layer Grad-CAM"
    assert "untrained" in chunks["Weights"].lower() and chunks["Model"]
    report = json.loads((tmp_path / "all" / "report.json").read_text())
    assert report["model"] == chunks["Model"] or report["model"] in chunks["Model"]


# 14 -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluated(blocks_image):
    doc, runner, drawings, _ = opened(blocks_image)
    evaluation = doc.evaluation
    evaluation.methods = ("gradcam", "ablation")
    evaluation.update_settings(pixel_steps=4, chance_runs=2, mprt=False, infidelity=False,
                               sensitivity=False)
    evaluation.run()
    runner.run_until_idle()
    assert evaluation.result() is not None
    return doc, drawings


def test_methods_tied_exactly_are_all_the_best(evaluated, monkeypatch):
    doc, drawings = evaluated
    result = doc.evaluation.result()
    target = doc.view.target
    same = result.result("gradcam", target)
    tied = replace(result, results={**result.results, ("ablation", target): replace(
        result.result("ablation", target), curves=same.curves)})
    monkeypatch.setattr(doc.evaluation, "result", lambda: tied)
    view = evaluation_view(doc, drawings)
    assert [row.best for row in view.areas] == [(True,) * 4, (True,) * 4]
    rows = [line.split(",") for line in evaluation_csv(tied).splitlines()[1:]]
    best = {(r[2], r[3]) for r in rows if r[0] == str(target) and r[7] == "True"}
    assert best == {(m, n) for m in ("gradcam", "ablation") for n in same.curves}
    for name in same.curves:
        assert tied.best_methods(target, name) == ("gradcam", "ablation")


def test_a_spearman_of_minus_one_says_the_ranking_is_reversed_not_that_the_map_changed(
        evaluated):
    doc, _ = evaluated
    result = doc.evaluation.result()
    target = doc.view.target
    method = result.result("gradcam", target)
    reversed_ = replace(method, mprt=(MprtStage("body.0", 3, -1.0, 0.1, np.zeros((2, 2))),))
    assert reversed_.survives_randomisation is True  # the ranking stayed, reversed
    evaluation = replace(result, results={**result.results, ("gradcam", target): reversed_})
    verdict = evaluation.verdict("gradcam", target)
    assert "changes when the model is randomised" not in verdict
    assert "reverse" in verdict and "-1.00" in verdict
    from segexplorer.engine.evaluation import randomisation_verdict

    kept = randomisation_verdict(0.9, True)
    lost = randomisation_verdict(0.05, False)
    assert "as the trained one" in kept and "near 0" in lost
