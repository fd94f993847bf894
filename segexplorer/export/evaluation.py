"""What ``segexplorer evaluate`` (and the window's Evaluate panel) writes: the curves as
PNG, SVG or PDF, the numbers as JSON (the shape of docs/evaluation.md) or CSV."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from ..engine.evaluation import Evaluation
from ..engine.methods import get_method
from ..render.evaluation import BandData, CurveData, TargetCurves, curves_figure
from .atomic import atomic_write, ensure_folder, write_text
from .files import json_text

FIGURE_FORMATS = ("png", "svg", "pdf")
NUMBER_FORMATS = ("json", "csv")


def target_curves(evaluation: Evaluation, target: int) -> TargetCurves:
    """One target's curves, ready to draw."""
    curves = {m: {name: CurveData(cv.x, cv.y, cv.auc)
                  for name, cv in evaluation.result(m, target).curves.items()}
              for m in evaluation.methods}
    chance = {name: BandData(b.x, b.mean, b.std, b.auc_mean)
              for name, b in evaluation.chance[target].items()}
    name = evaluation.categories[target]
    return TargetCurves(
        title=f"'{name}' (class {target})", curves=curves, chance=chance,
        labels={m: get_method(m).label for m in evaluation.methods},
        best={curve: evaluation.best_methods(target, curve) for curve in chance})


def save_curves(path: str | Path, evaluation: Evaluation,
                targets: tuple[int, ...] | None = None) -> Path:
    """The curves of ``targets`` (default: all), one row per target, in the format of
    the path's suffix (.png, .svg or .pdf), written atomically."""
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        from ..engine.errors import UserError

        raise UserError(f"Cannot save curves as '{target.suffix}': use .png, .svg or .pdf.")
    chosen = targets if targets is not None else evaluation.targets
    figure = curves_figure([target_curves(evaluation, c) for c in chosen])
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt)
    data = buffer.getvalue()
    return atomic_write(target, lambda handle: handle.write(data))


def evaluation_json(evaluation: Evaluation, context: dict[str, Any] | None = None) -> str:
    data = evaluation.to_json()
    if context:
        data = {**context, **data}
    return json_text(data)


def evaluation_csv(evaluation: Evaluation) -> str:
    """One row per target, method and curve: its area, chance's, and the method's other
    numbers (repeated on its four rows)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["class_index", "class", "method", "curve", "auc", "chance_auc_mean",
                     "chance_auc_std", "best", "infidelity", "sensitivity_max",
                     "mprt_last_spearman", "survives_randomisation", "verdict"])
    for c in evaluation.targets:
        for m in evaluation.methods:
            r = evaluation.result(m, c)
            last = r.mprt[-1].spearman if r.mprt else float("nan")
            for name, curve in r.curves.items():
                band = evaluation.chance[c][name]
                writer.writerow([c, evaluation.categories[c], m, name, _num(curve.auc),
                                 _num(band.auc_mean), _num(band.auc_std),
                                 m in evaluation.best_methods(c, name), _num(r.infidelity),
                                 _num(r.sensitivity_max), _num(last),
                                 r.survives_randomisation, evaluation.verdict(m, c)])
    return out.getvalue()


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.6g}"


def save_numbers(path: str | Path, evaluation: Evaluation,
                 context: dict[str, Any] | None = None) -> Path:
    """The numbers as JSON or CSV, by the path's suffix."""
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt == "json":
        return write_text(target, evaluation_json(evaluation, context))
    if fmt == "csv":
        return write_text(target, evaluation_csv(evaluation))
    from ..engine.errors import UserError

    raise UserError(f"Cannot save the numbers as '{target.suffix}': use .json or .csv.")


def write_evaluation(out_dir: str | Path, evaluation: Evaluation,
                     context: dict[str, Any] | None = None) -> list[Path]:
    """``curves.png`` and ``evaluation.json`` (and ``evaluation.csv``) into ``out_dir``.
    Everything is drawn before the first file is written; evaluation.json last."""
    folder = ensure_folder(out_dir)
    figure = curves_figure([target_curves(evaluation, c) for c in evaluation.targets])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png = buffer.getvalue()
    table = evaluation_csv(evaluation)
    report = evaluation_json(evaluation, context)
    written = [atomic_write(folder / "curves.png", lambda handle: handle.write(png)),
               write_text(folder / "evaluation.csv", table),
               write_text(folder / "evaluation.json", report)]
    return written
