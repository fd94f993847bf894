"""SegExplorer's PyInstaller runtime hook: load torch before any Qt library.

PyInstaller runs the runtime hooks named in the spec before its own ones, so this runs
before PyInstaller's PySide6 hook (pyi_rth_pyside6), which imports PySide6.QtCore to set up
Qt's paths. On Windows, Qt's DLLs (and the C++ runtime PySide6 ships) loaded first can keep
torch's from initialising: "OSError: [WinError 1114] ... c10.dll". Elsewhere the order costs
nothing (the application imports torch at start-up anyway) and keeps every platform the
same. ``SegExplorer --frozen-self-check`` verifies the order in the process's own list of
loaded libraries. See segexplorer/frozen.py and docs/packaging.md.
"""

from segexplorer.frozen import import_torch_first

import_torch_first("runtime hook")
