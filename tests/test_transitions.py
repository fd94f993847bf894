"""The window's state and transitions (issue 26, items 1-4 and 10), through the document.

Each test failed on main at 7f219e3 (run against main's code before the fix); the
widget-level ones are in tests/gui/test_window_transitions.py.
"""

from __future__ import annotations

from test_document import make_doc, opened, present

from segexplorer.gui.document.canvas_view import HOVER_HINT, describe_pixel
from segexplorer.gui.document.drawings import Drawings


# 1 -----------------------------------------------------------------------------------
def test_a_pixel_of_the_old_working_size_is_off_the_image_at_the_new_one(motorcycle_path):
    doc, runner, drawings, _ = opened(motorcycle_path, size=64)
    assert present(doc, drawings).area.canvas.overlay.shape[:2] == (64, 94)
    assert describe_pixel(doc, drawings, 93, 63).startswith("x 93, y 63")
    doc.model.size = 48
    runner.run_until_idle()
    view = present(doc, drawings)
    assert view.area.canvas.working.shape[:2] == view.area.canvas.overlay.shape[:2] == (48, 71)
    assert describe_pixel(doc, drawings, 93, 63) == HOVER_HINT  # not an IndexError
    assert describe_pixel(doc, drawings, 70, 47).startswith("x 70, y 47  (original 731, 490)")
    assert describe_pixel(doc, Drawings(), 70, 47).startswith("x 70, y 47")
    assert make_doc  # (used by the later tests)
