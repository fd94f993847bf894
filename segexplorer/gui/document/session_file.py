"""A saved session: the image, the model, every choice and the ablation history, in one file.

The file is JSON (``.segx``): the image's own bytes (base64, so the file travels alone)
and its path, the three choices, the canvas layer, opacities, the target, each
ablation of the history as (segments kind, baseline, segment ids), and the comparison
when one is open (``comparison``: model B's choice). Results are not
stored: reopening predicts again and recomputes the ablations in one job, which gives the
same numbers (the engine is deterministic for a given model, image and device).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...engine.errors import UserError
from .choices import AnalysisChoice, ModelChoice, ViewChoice, from_dict, to_dict

FORMAT = "segexplorer-session"
VERSION = 1
SUFFIX = ".segx"


@dataclass(frozen=True)
class SavedAblation:
    kind: str
    baseline: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class SessionFile:
    """Everything a session file holds, read back."""

    image_name: str
    image_path: str | None
    image_bytes: bytes
    model: ModelChoice
    analysis: AnalysisChoice
    view: ViewChoice
    canvas_layer: str
    opacity: dict[str, float]
    outline: bool
    target: int | None
    ablate_mode: bool
    ablation_view: str
    history: tuple[SavedAblation, ...]
    shown: int | None  # which history entry was on screen
    #: the comparison (model B's choice, the third view), None when not comparing;
    #: checked and applied by ``ComparisonState.restore``
    comparison: dict[str, Any] | None = None


def to_json(s: SessionFile) -> str:
    data: dict[str, Any] = {
        "format": FORMAT, "version": VERSION,
        "image": {"name": s.image_name, "path": s.image_path,
                  "bytes_base64": base64.b64encode(s.image_bytes).decode("ascii")},
        "model": to_dict(s.model), "analysis": to_dict(s.analysis), "view": to_dict(s.view),
        "canvas_layer": s.canvas_layer, "opacity": s.opacity, "outline": s.outline,
        "target": s.target,
        "ablation": {"active": s.ablate_mode, "view": s.ablation_view, "shown": s.shown,
                     "history": [{"segments": a.kind, "baseline": a.baseline,
                                  "ids": list(a.ids)} for a in s.history]},
    }
    if s.comparison is not None:
        data["comparison"] = s.comparison
    return json.dumps(data, indent=1) + "\n"


def _comparison(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("model", {}), dict):
        raise ValueError("not a comparison")
    return dict(value)


def read(path: str | Path) -> SessionFile:
    """Read a session file; a file that is not one is a one-line UserError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError("not a session")
        image = data["image"]
        ablation = data.get("ablation", {})
        return SessionFile(
            image_name=str(image.get("name") or "image"),
            image_path=image.get("path"),
            image_bytes=base64.b64decode(image["bytes_base64"]),
            model=from_dict(ModelChoice, data.get("model", {})),
            analysis=from_dict(AnalysisChoice, data.get("analysis", {})),
            view=from_dict(ViewChoice, data.get("view", {})),
            canvas_layer=str(data.get("canvas_layer", "attribution")),
            opacity={str(k): float(v) for k, v in data.get("opacity", {}).items()},
            outline=bool(data.get("outline", True)),
            target=None if data.get("target") is None else int(data["target"]),
            ablate_mode=bool(ablation.get("active", False)),
            ablation_view=str(ablation.get("view", "input")),
            history=tuple(SavedAblation(str(a["segments"]), str(a["baseline"]),
                                        tuple(int(i) for i in a["ids"]))
                          for a in ablation.get("history", [])),
            shown=None if ablation.get("shown") is None else int(ablation["shown"]),
            comparison=_comparison(data.get("comparison")),
        )
    except OSError as exc:
        raise UserError(f"Session file '{path.name}' cannot be read ({exc.strerror}): check "
                        "the path.") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"'{path.name}' is not a SegExplorer session file: choose a .segx "
                        "file saved by File > Save Session.") from None
