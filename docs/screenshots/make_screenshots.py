"""Regenerate the README's screenshots, at 1600 x 1000 and at 1024 x 700.

Run it with a display (or under Xvfb: ``xvfb-run -a -s "-screen 0 1600x1000x24" python
docs/screenshots/make_screenshots.py [main|ablate|main_small|ablate_small|evaluate|
evaluate_small|multilabel|compare|compare_small]``; all by
default). It analyses a real photo (scikit-image's motorcycle, or the coffee cup for
the small ones) with the default architecture and untrained weights (no download
needed), so the window shows its UNTRAINED banner. The multi-label one uses a model card
whose three sigmoid channels detect colours (red, green, blue above half; written here,
no weights), on the astronaut.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ARCHITECTURE = "fcn_resnet101"
SIZE = 320
LARGE, SMALL = (1600, 1000), (1024, 700)
HERE = Path(__file__).parent
TIMEOUT_S = 900


class TimedOut(Exception):
    pass


def photo(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


@contextlib.contextmanager
def analysed_window(image: Path, size: tuple[int, int], working: int = SIZE,
                    architecture: str = ARCHITECTURE, weights: str = "untrained"
                    ) -> Iterator[tuple[object, object]]:
    """The window on ``image``, predicted, with fresh settings, at ``size``."""
    from PySide6.QtCore import QSettings

    from segexplorer.gui.app import _application
    from segexplorer.gui.document.choices import ModelChoice
    from segexplorer.gui.main_window import MainWindow

    app, _created = _application(sys.argv[:1], offscreen=False)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, interactive=False)
        window.document.model.set(ModelChoice(architecture, weights, "cpu", working))
        window.resize(*size)
        window.show()
        window.document.image.open(image)
        wait(window, lambda: window.document.store.prediction is not None)
        try:
            yield app, window
        finally:
            window.close()


def wait(window, condition) -> None:
    from segexplorer.gui.app import wait_until

    if not wait_until(condition, TIMEOUT_S):
        raise TimedOut(f"timed out: {window.status.last_error}")


def save(app, window, name: str) -> Path:
    from segexplorer.gui.app import wait_until

    wait_until(lambda: False, 0.5)  # let the layout settle
    app.processEvents()
    out = HERE / name
    window.grab().save(str(out))
    return out


def _main(name: str, image: str, size: tuple[int, int]) -> Path:
    from segexplorer.gui.document.choices import ATTRIBUTION, GRADCAM

    with analysed_window(photo(image), size) as (app, window):
        doc = window.document
        doc.analysis.method = GRADCAM
        doc.layers.chosen = ATTRIBUTION
        wait(window, lambda: doc.store.has_result(GRADCAM) and not window.runner.is_busy())
        return save(app, window, name)


def _ablate(name: str, image: str, size: tuple[int, int]) -> Path:
    with analysed_window(photo(image), size) as (app, window):
        ablation = window.document.ablation
        ablation.set_active(True)
        wait(window, lambda: not window.runner.is_busy())
        # click the middle of the second largest class, then show the new segmentation
        pred = window.document.store.prediction
        ys, xs = (pred.class_map == pred.present_classes[1]).nonzero()
        i = len(xs) // 2
        ablation.click(int(xs[i]), int(ys[i]))
        wait(window, lambda: ablation.shown is not None and not window.runner.is_busy())
        ablation.set_view("after")
        print(ablation.shown.summary)
        return save(app, window, name)


def _evaluate(name: str, image: str, size: tuple[int, int]) -> Path:
    """The Evaluate panel after Run: Grad-CAM and ablation against chance."""
    # a smaller working size and fewer steps than the defaults: an evaluation sends a few
    # hundred images through an untrained fcn_resnet101 on two CPU cores
    with analysed_window(photo(image), size, working=128) as (app, window):
        evaluation = window.document.evaluation
        evaluation.methods = ("gradcam", "ablation")
        evaluation.update_settings(pixel_steps=10, chance_runs=5, mprt_steps=4,
                                   sensitivity=False)
        window.evaluate_dock.raise_()
        wait(window, lambda: not window.runner.is_busy())
        evaluation.run()
        wait(window, lambda: evaluation.result() is not None and not window.runner.is_busy())
        return save(app, window, name)


COLOUR_DETECTORS = '''
from torch import nn


def build(k=10.0):
    """Three sigmoid channels: red, green and blue above 55 %, over 7 x 7 pixels."""
    import torch

    smooth = nn.Conv2d(3, 3, 7, padding=3, groups=3, bias=False)
    head = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        smooth.weight.fill_(1 / 49)
        head.weight.copy_(torch.eye(3)[:, :, None, None] * k)
        head.bias.fill_(-k * 0.55)
    return nn.Sequential(smooth, head)
'''
COLOUR_CARD = """[model]
name = "Colour detectors"
source = "python"
factory = "detectors.py:build"
classes = ["red", "green", "blue"]
palette = [[230, 40, 40], [40, 190, 60], [60, 110, 240]]
outputs = "multilabel"

[preprocess]
size = 320
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
"""


def _multilabel(name: str, image: str, size: tuple[int, int]) -> Path:
    """A multi-label model: each class a layer with its outline, the legend with each
    class's share, the hover over a pixel in all three classes."""
    from segexplorer.gui.document.choices import SEGMENTATION

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "detectors.py").write_text(COLOUR_DETECTORS, encoding="utf-8")
        card = Path(tmp) / "detectors.toml"
        card.write_text(COLOUR_CARD, encoding="utf-8")
        with analysed_window(photo(image), size, architecture=str(card),
                             weights="default") as (app, window):
            doc = window.document
            doc.layers.chosen = SEGMENTATION
            wait(window, lambda: not window.runner.is_busy())
            pred = doc.store.prediction
            ys, xs = pred.masks.all(axis=0).nonzero()
            from segexplorer.gui.app import wait_until

            wait_until(lambda: False, 4.5)  # the status bar's notices have gone
            window.canvas.hovered.emit(int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
            return save(app, window, name)


def _compare(name: str, size: tuple[int, int], ablate: bool = False) -> Path:
    """The comparison of docs/compare.md's worked example: the stain model against the
    copy whose nuclei row is scaled by 1.6, on scikit-image's immunohistochemistry photo
    (hand-set weights: a real model's comparison, no untrained banner)."""
    import torch

    from segexplorer.gui.document.choices import ATTRIBUTION, GRADCAM, ModelChoice

    card = HERE.parent / "compare" / "stain.toml"
    sys.path.insert(0, str(card.parent))
    from stain_model import CLASSES, build  # type: ignore[import-not-found]

    nuclei = CLASSES.index("nuclei")
    with tempfile.TemporaryDirectory() as tmp:
        state = build().state_dict()
        state["head.weight"][nuclei] *= 1.6
        state["head.bias"][nuclei] *= 1.6
        tweaked = Path(tmp) / "stain_nuclei_x1.6.pt"
        torch.save(state, tweaked)
        with analysed_window(photo("ihc.png"), size, working=256,
                             architecture=str(card), weights="default") as (app, window):
            doc = window.document
            doc.analysis.method = GRADCAM
            doc.layers.chosen = ATTRIBUTION
            doc.view.target = nuclei
            doc.comparison.open(ModelChoice(str(card), str(tweaked), "cpu", 256))
            window.show_comparison()
            wait(window, lambda: doc.comparison.result() is not None
                 and not window.runner.is_busy())
            if ablate:
                doc.ablation.set_active(True)
                doc.comparison.third = "changed"
                size_d = window.compare_view.canvases[0].image_size()
                pred = doc.store.prediction
                assert size_d is not None and pred is not None
                # a click on the middle of the largest region B calls nuclei, A not
                common = doc.comparison.common_segments("component")
                doc.analysis.segments = "component"
                changed = [s for s in common.info
                           if s.b_classes == (nuclei,) and s.a_classes != (nuclei,)]
                seg = max(changed, key=lambda s: s.pixels)
                ys, xs = (common.ids == seg.id).nonzero()
                gy, gx = common.ids.shape
                k = len(xs) // 2
                doc.comparison.click(int(xs[k] * size_d[0] / gx), int(ys[k] * size_d[1] / gy),
                                     (size_d[1], size_d[0]))
                wait(window, lambda: doc.comparison.shown() is not None
                     and not window.runner.is_busy())
            return save(app, window, name)


SCENES = {
    "main": lambda: _main("main_window.png", "motorcycle_left.png", LARGE),
    "ablate": lambda: _ablate("ablate.png", "motorcycle_left.png", LARGE),
    "main_small": lambda: _main("main_window_1024.png", "coffee.png", SMALL),
    "ablate_small": lambda: _ablate("ablate_1024.png", "coffee.png", SMALL),
    "evaluate": lambda: _evaluate("evaluate.png", "motorcycle_left.png", LARGE),
    "evaluate_small": lambda: _evaluate("evaluate_1024.png", "coffee.png", SMALL),
    "multilabel": lambda: _multilabel("multilabel.png", "astronaut.png", LARGE),
    "compare": lambda: _compare("compare.png", LARGE),
    "compare_small": lambda: _compare("compare_1024.png", SMALL, ablate=True),
}


def main(argv: list[str]) -> int:
    names = argv or list(SCENES)
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        print(f"unknown screenshot {unknown[0]!r}: choose from {', '.join(SCENES)}",
              file=sys.stderr)
        return 2
    try:
        for name in names:
            print(SCENES[name]())
    except TimedOut as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
