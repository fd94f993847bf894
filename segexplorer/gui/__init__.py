"""The desktop window (PySide6): a thin shell over the engine, render and export layers.

Everything here is Qt. Model work runs in worker threads (:mod:`.jobs`); the main
thread only draws. Start it with :func:`segexplorer.gui.app.run_app`.
"""

import os

# superqt reaches Qt through qtpy, which would take the first binding it finds: this one
os.environ.setdefault("QT_API", "pyside6")
