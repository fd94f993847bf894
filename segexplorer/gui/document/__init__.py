"""The window's document: everything the window knows, without Qt.

``choices`` (what the user chose, labelled with the engine's vocabulary), ``keys`` (what
identifies a result), ``store`` (the results), ``planner`` (what must be computed: a pure
function), ``jobbook`` and ``runner`` (what is running, over a runner protocol with a
synchronous :class:`~.runner.QueueRunner` for tests), ``presenter`` (every text, enabled
state and canvas content as one value), ``ablation`` (ablate mode), ``preview`` (the
quick look on slow devices), ``exports``. An import-linter contract keeps PySide6 out;
``docs/architecture.md`` walks through it.
"""

from .choices import AnalysisChoice, ModelChoice, ViewChoice
from .document import Document
from .exports import Exports
from .messages import Failure, Notice, OfflineOffer, Saved
from .presenter import Presenter, WindowView
from .runner import QueueRunner, Runner

__all__ = [
    "AnalysisChoice",
    "Document",
    "Exports",
    "Failure",
    "ModelChoice",
    "Notice",
    "OfflineOffer",
    "Presenter",
    "QueueRunner",
    "Runner",
    "Saved",
    "ViewChoice",
    "WindowView",
]
