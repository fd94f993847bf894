"""Which of ``explain``'s files an image gets: ``segexplorer batch --outputs`` (no torch).

``explain`` writes four kinds of file for an image (README, "explain writes into --out"):

* ``report``: ``report.json``;
* ``arrays``: ``attributions.npz``;
* ``segmentation``: ``segmentation.png``;
* ``maps``: the heat-map PNGs, ``<method>_<c>_<name>.png`` and ``activation.png``.

Each ``--outputs`` choice is a named subset of them; every file it writes is byte for byte
the file the full set writes (tests/test_batch_outputs.py compares them). ``report.json``
is in every choice: it says what the folder holds and how it was made.
"""

from __future__ import annotations

REPORT, ARRAYS, SEGMENTATION, MAPS = "report", "arrays", "segmentation", "maps"
PARTS = (REPORT, ARRAYS, SEGMENTATION, MAPS)

FULL = "full"
#: each choice and the parts it writes (the first is the default: explain's files)
OUTPUT_CHOICES: dict[str, frozenset[str]] = {
    FULL: frozenset(PARTS),
    "arrays": frozenset({REPORT, ARRAYS}),  # what a dataset analysis reads back
    "pngs": frozenset({REPORT, SEGMENTATION, MAPS}),  # what a person looks at
    "report": frozenset({REPORT}),  # the numbers only (the summary comes from the journal)
}

#: one line per choice, for --help and the docs
OUTPUT_HELP = {
    FULL: "every file explain writes (default)",
    "arrays": "report.json and attributions.npz",
    "pngs": "report.json, segmentation.png and the heat-map PNGs",
    "report": "report.json only",
}


def output_parts(choice: str) -> frozenset[str]:
    """The parts ``choice`` writes; a UserError in one line for an unknown choice."""
    try:
        return OUTPUT_CHOICES[choice]
    except KeyError:
        from ..engine.errors import UserError

        raise UserError(f"Unknown --outputs '{choice}': use one of "
                        f"{', '.join(OUTPUT_CHOICES)}.") from None
