"""How the window writes numbers, shares, durations and shapes (no Qt)."""

from __future__ import annotations

from collections.abc import Sequence


def format_value(value: float) -> str:
    if value == 0:
        return "0"
    text = f"{value:.3g}"
    return text.replace("e-0", "e-").replace("e+0", "e")


def format_share(share: float) -> str:
    """A share of pixels: one decimal from 10 %, two below, and never a false 0."""
    if share >= 0.1:
        return f"{share * 100:.1f} %"
    if share >= 0.0001:
        return f"{share * 100:.2f} %"
    return "<0.01 %" if share > 0 else "0 %"


def format_duration(seconds: float) -> str:
    """'40 s', '3 min', '2.5 h': a rough time, rounded as rough times are."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def format_shape(shape: Sequence[int] | None) -> str:
    return " x ".join(str(int(d)) for d in shape) if shape else ""
