"""The engine's public API: torch + Captum, no Qt.

Everything a caller (the CLI, the window's document, a notebook) needs is named here:

* models: :func:`load_model` (a built-in architecture, its weights: ``default``,
  ``untrained`` or a file) giving a :class:`LoadedModel`; :func:`list_layers`,
  :func:`layer_output_shapes`; :func:`register_architecture` for new ones;
* images: :func:`load_image`, :func:`preprocess` (the seed's Resize, ToTensor, Normalize)
  giving a :class:`PreparedImage`;
* analysis: :class:`Session` (one image with one model: ``predict``, ``gradcam``,
  ``sweep``, ``ablate``; its memory budget from :func:`resolve_budget`, a
  :class:`MemoryBudget`), :func:`make_segments`, :class:`Aggregation`; results are frozen
  dataclasses of numpy arrays (:class:`Prediction`, :class:`GradCamResult`,
  :class:`AblationSweep`, :class:`AblationOutcome`);
* the whole ``segexplorer explain`` analysis: :func:`explain` (from a file) and
  :func:`explain_session` (from a session, reusing results already computed);
* jobs and errors: :class:`JobState`, :class:`UserError`, :class:`Cancelled`.

Names are imported when first used (importing this package does not import torch: the
window reads ``engine.catalog`` before torch has loaded).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AblationOutcome": "session",
    "AblationSweep": "results",
    "Aggregation": "aggregation",
    "Baseline": "baselines",
    "Cancelled": "errors",
    "ExplainRequest": "analysis",
    "ExplainResult": "analysis",
    "GradCamResult": "results",
    "JobState": "jobs",
    "LoadedModel": "models",
    "MemoryBudget": "budget",
    "Prediction": "results",
    "PreparedImage": "image",
    "Segments": "segments",
    "Session": "session",
    "UserError": "errors",
    "ablate_at_points": "ablation",
    "explain": "analysis",
    "explain_session": "analysis",
    "layer_output_shapes": "models",
    "list_layers": "models",
    "load_image": "image",
    "load_model": "models",
    "make_segments": "segments",
    "parse_baseline": "baselines",
    "preprocess": "image",
    "register_architecture": "models",
    "resolve_budget": "budget",
}

__all__ = [
    "AblationOutcome",
    "AblationSweep",
    "Aggregation",
    "Baseline",
    "Cancelled",
    "ExplainRequest",
    "ExplainResult",
    "GradCamResult",
    "JobState",
    "LoadedModel",
    "MemoryBudget",
    "Prediction",
    "PreparedImage",
    "Segments",
    "Session",
    "UserError",
    "ablate_at_points",
    "explain",
    "explain_session",
    "layer_output_shapes",
    "list_layers",
    "load_image",
    "load_model",
    "make_segments",
    "parse_baseline",
    "preprocess",
    "register_architecture",
    "resolve_budget",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'segexplorer.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and editors: the same names, eagerly
    from .ablation import ablate_at_points
    from .aggregation import Aggregation
    from .analysis import ExplainRequest, ExplainResult, explain, explain_session
    from .baselines import Baseline, parse_baseline
    from .budget import MemoryBudget, resolve_budget
    from .errors import Cancelled, UserError
    from .image import PreparedImage, load_image, preprocess
    from .jobs import JobState
    from .models import (
        LoadedModel,
        layer_output_shapes,
        list_layers,
        load_model,
        register_architecture,
    )
    from .results import AblationSweep, GradCamResult, Prediction
    from .segments import Segments, make_segments
    from .session import AblationOutcome, Session
