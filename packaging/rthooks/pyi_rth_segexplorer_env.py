"""SegExplorer's PyInstaller runtime hook: the programs the app starts get the user's
LD_LIBRARY_PATH back.

On Linux PyInstaller's bootloader puts the bundle's folder first on ``LD_LIBRARY_PATH`` before
it starts Python, and keeps the user's own value, if there was one, in
``LD_LIBRARY_PATH_ORIG``. This process's dynamic linker read the variable when the process
started, so changing it now changes nothing here; but every program the app starts inherits
it, and a system program then loads the bundle's copies of its libraries instead of its own:
matplotlib runs the system's ``fc-list``, which loaded the bundle's libfontconfig. PyInstaller's
documentation ("LD_LIBRARY_PATH / LIBPATH considerations") says to restore the original for
child processes; this does it once for all of them. The bundle's own executable, started again
(a multiprocessing worker), sets its path again itself.
"""

import os
import sys


def _restore_library_path(environ=os.environ, bundle=getattr(sys, "_MEIPASS", None)) -> None:
    original = environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        environ["LD_LIBRARY_PATH"] = original
        return
    # The user had none: the bootloader's value is the bundle's folder (never anything else,
    # but keep whatever else is there).
    bundle_dir = os.path.realpath(bundle) if bundle else None
    kept = [p for p in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
            if p and os.path.realpath(p) != bundle_dir]
    if kept:
        environ["LD_LIBRARY_PATH"] = os.pathsep.join(kept)
    else:
        environ.pop("LD_LIBRARY_PATH", None)


if sys.platform.startswith("linux"):
    _restore_library_path()
