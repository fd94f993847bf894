"""The batch's dataset-level files, each written atomically from the journal.

``summary.parquet`` and ``summary.csv`` (one row per image x predicted class),
``errors.csv``, ``context.csv`` and ``context.png`` (the class x class context matrix
and its heat map, with counts), ``leaning.csv`` (per class and method, the images ranked
by the share of positive attribution outside the class's own segment). pyarrow writes
the tables: Parquet keeps the types (nullable floats, booleans) that CSV loses.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..export.atomic import write_bytes
from .comparison import COMPARISON_CSV, COMPARISON_PARQUET
from .comparison import TYPES as COMPARISON_TYPES
from .summary import BASE_COLUMNS, Dataset

if TYPE_CHECKING:
    import pyarrow as pa
    from matplotlib.colors import Colormap
    from matplotlib.ticker import PercentFormatter

SUMMARY_PARQUET, SUMMARY_CSV = "summary.parquet", "summary.csv"
ERRORS_CSV, CONTEXT_CSV, CONTEXT_PNG, LEANING_CSV = (
    "errors.csv", "context.csv", "context.png", "leaning.csv")
OUTPUT_FILES = (SUMMARY_PARQUET, SUMMARY_CSV, ERRORS_CSV, CONTEXT_CSV, CONTEXT_PNG,
                LEANING_CSV)

_TYPES = {"image": "string", "class_index": "int64", "class": "string", "pixels": "int64",
          "target": "bool_", "path": "string", "error": "string", "method": "string",
          "rank": "int64", "target_index": "int64", "target_class": "string",
          "ablated_index": "int64", "ablated_class": "string", "images": "int64",
          "outputs": "string", **COMPARISON_TYPES}
ERROR_COLUMNS = ("image", "path", "error")
CONTEXT_COLUMNS = ("target_index", "target_class", "ablated_index", "ablated_class",
                   "mean_relative_change", "images")
LEANING_COLUMNS = ("class_index", "class", "method", "rank", "image", "outside_share",
                   "pixels")


def _table(rows: list[dict[str, Any]] | tuple[dict[str, Any], ...],
           columns: tuple[str, ...]) -> pa.Table:
    """A pyarrow table of ``rows`` with typed columns (every other column a nullable
    float64)."""
    import pyarrow as pa

    schema = pa.schema([pa.field(c, getattr(pa, _TYPES.get(c, "float64"))())
                        for c in columns])
    return pa.table({c: [r.get(c) for r in rows] for c in columns}, schema=schema)


def _csv_bytes(table: pa.Table) -> bytes:
    import pyarrow.csv as pcsv

    sink = io.BytesIO()
    pcsv.write_csv(table, sink)
    return sink.getvalue()


def _parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_tables(dataset: Dataset) -> list[Path]:
    """Every dataset-level file of ``dataset.folder`` (each replaced whole)."""
    folder = dataset.folder
    summary = _table(dataset.rows, dataset.columns)
    errors = _table(dataset.errors, ERROR_COLUMNS)
    context = _table(dataset.context_table(), CONTEXT_COLUMNS)
    leaning = _table(dataset.leaning_table(), LEANING_COLUMNS)
    files = [
        (SUMMARY_PARQUET, _parquet_bytes(summary)),
        (SUMMARY_CSV, _csv_bytes(summary)),
        (ERRORS_CSV, _csv_bytes(errors)),
        (CONTEXT_CSV, _csv_bytes(context)),
        (LEANING_CSV, _csv_bytes(leaning)),
        (CONTEXT_PNG, context_png(dataset)),
    ]
    if dataset.comparison is not None:  # batch --with
        compared = _table(dataset.comparison.rows, dataset.comparison.columns)
        files += [(COMPARISON_PARQUET, _parquet_bytes(compared)),
                  (COMPARISON_CSV, _csv_bytes(compared))]
    return [write_bytes(folder / name, data) for name, data in files]


def read_comparison(folder: str | Path) -> pa.Table:
    """comparison.parquet (``batch --with``) as a pyarrow Table."""
    import pyarrow.parquet as pq

    return pq.read_table(Path(folder) / COMPARISON_PARQUET)


def read_summary(folder: str | Path) -> pa.Table:
    """summary.parquet as a pyarrow Table (for notebooks and tests)."""
    import pyarrow.parquet as pq

    return pq.read_table(Path(folder) / SUMMARY_PARQUET)


def context_png(dataset: Dataset) -> bytes:
    """The context matrix as a heat map: rows are the class whose score changes, columns
    the class ablated; each cell shows the mean relative change and the image count."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    m = dataset.context
    n = max(m.size, 1)
    side = min(3.0 + 0.62 * n, 40.0)
    fig = Figure(figsize=(side + 1.6, side), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if m.size == 0:
        ax.text(0.5, 0.5, "No image had an ablation sweep:\nno context matrix",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        finite = m.mean[np.isfinite(m.mean)]
        # saturate at -100 % / +100 %: a class whose score is near zero in some image gives
        # huge relative changes that would wash every other cell out (the text says all)
        limit = min(max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-6),
                    COLOR_LIMIT)
        shown = np.ma.masked_invalid(m.mean)
        cmap = _colormap()
        image = ax.imshow(shown, cmap=cmap, norm=TwoSlopeNorm(0.0, -limit, limit))
        fontsize = 8 if n <= 12 else 6
        for i in range(m.size):
            for j in range(m.size):
                if m.count[i, j]:
                    value = m.mean[i, j]
                    strong = abs(value) > 0.55 * limit
                    ax.text(j, i, f"{_percent_text(value)}\nn={m.count[i, j]}", ha="center",
                            va="center", fontsize=fontsize,
                            color="white" if strong else "black")
        ax.set_xticks(range(m.size), m.names, rotation=45, ha="right")
        ax.set_yticks(range(m.size), m.names)
        ax.set_xlabel("class whose segments are ablated")
        ax.set_ylabel("class whose score changes")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("mean relative change of the score")
        bar.ax.yaxis.set_major_formatter(_percent())
    ax.set_title(f"Context matrix: {len(dataset.images)} images", fontsize=11)
    fig.tight_layout()
    sink = io.BytesIO()
    fig.savefig(sink, format="png")
    return sink.getvalue()


COLOR_LIMIT = 1.0


def _percent_text(value: float) -> str:
    rounded = round(value * 100)
    return "0%" if rounded == 0 else f"{rounded:+d}%"


def _colormap() -> Colormap:
    from matplotlib import colormaps

    return colormaps["RdBu"].with_extremes(bad="#dddddd")


def _percent() -> PercentFormatter:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


__all__ = ["BASE_COLUMNS", "OUTPUT_FILES", "context_png", "read_comparison", "read_summary",
           "write_tables"]
