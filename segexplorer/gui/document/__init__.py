"""The window's document: everything the window knows, without Qt.

One state per concern (``states``: the model, the image, the analysis, the view, the
canvas layers; ``ablation``, ``evaluation``, ``model_layers``, ``dataset``), each with
typed fields and its own change events (``events``); the results (``store``); what must
be computed (``planner``: a pure function) and the one route of every job (``requests``,
``jobtable``, ``jobbook``, over a runner protocol with a synchronous
:class:`~.runner.QueueRunner` for tests); each panel's view function (``canvas_view``,
``explain_view``, ``panel_views``, ``window_views``, ``dataset_view``) and the registry
that presents them when what they read changes (``presenting``); the quick look on slow
devices (``preview``); ``exports`` and ``sessions``. An import-linter contract keeps
PySide6 out; ``docs/architecture.md`` walks through it.
"""

from .choices import AnalysisChoice, ModelChoice, ViewChoice
from .document import Document
from .exports import Exports
from .messages import Failure, Notice, OfflineOffer, Saved
from .presenting import Presenters
from .runner import QueueRunner, Runner

__all__ = [
    "AnalysisChoice",
    "Document",
    "Exports",
    "Failure",
    "ModelChoice",
    "Notice",
    "OfflineOffer",
    "Presenters",
    "QueueRunner",
    "Runner",
    "Saved",
    "ViewChoice",
]
