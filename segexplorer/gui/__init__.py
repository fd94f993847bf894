"""The desktop window (PySide6): a thin shell over the engine, render and export layers.

Everything here is Qt. Model work runs in worker threads (:mod:`.jobs`); the main
thread only draws. Start it with :func:`segexplorer.gui.app.run_app`.
"""
