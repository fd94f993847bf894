"""What the document tells its views besides "show me again": failures, transient notices,
the offer of another way when weights are missing, saved files; and the engine's
messages in the window's words (controls, not command-line flags)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Failure:
    """A job failed: its one-line message, and a traceback when it is a bug."""

    channel: str
    message: str
    details: str = ""


@dataclass(frozen=True)
class Notice:
    """A transient status line; ``replaces``: clear the status if it still shows this."""

    text: str
    timeout_ms: int = 0
    replaces: str | None = None


@dataclass(frozen=True)
class OfflineOffer:
    """Default weights that are not cached and could not be fetched."""

    architecture: str
    message: str


@dataclass(frozen=True)
class Saved:
    message: str
    path: Path


#: the CLI's words in the engine's messages, and what a window user does instead
_WINDOW_WORDS = (
    ("pass --weights PATH to a local file (or --weights untrained for a demo)",
     "load a local file (Weights: Load weights file...), or choose Weights: Untrained "
     "(demo)"),
    ("pass --weights PATH", "load a weights file (Weights: Load weights file...)"),
    ("--weights untrained", "Weights: Untrained (demo)"),
    ("--weights PATH", "Weights: Load weights file..."),
    ("Try --device cpu.", "Choose Device: cpu."),
    ("use --device cpu (or auto)", "choose Device: cpu"),
    ("--device cpu", "Device: cpu"),
    ("Pick the matching --model", "Pick the matching Model"),
    ("(segexplorer layers MODEL lists them)", "(the layer picker lists them)"),
    ("pass a weights file", "load a weights file (Weights: Load weights file...)"),
)


def window_wording(message: str) -> str:
    """An engine message in the window's words: controls, not command-line flags."""
    for cli, window in _WINDOW_WORDS:
        message = message.replace(cli, window)
    return message
