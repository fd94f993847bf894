"""Model > Open Model Card... and the recent cards: the window's side of model cards.

Reading a card runs no code (``engine.cards``); a card whose source is ``python`` runs
the user's own factory when the model is built, so the window asks first, every time
such a card is opened, and never reopens one by itself at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu

from ..engine.cards import ModelCard, is_card_path, read_card
from ..engine.errors import UserError
from .document.choices import ModelChoice
from .document.states import ModelState
from .settings import Preferences

CARD_FILTER = "Model cards (*.toml);;All files (*)"


def runs_code_question(card: ModelCard) -> str:
    where = f"{card.factory[0]}:{card.factory[1]}" if card.factory else str(card.path)
    return (f"The model card '{card.path.name}' builds its model by running Python code: "
            f"{where}.\n\nOpen it only if you trust where it came from.")


def confirmed_card(path: str, show_error: Callable[[str], None],
                   ask: Callable[[str, str], bool],
                   status: Callable[[str], None]) -> ModelCard | None:
    """The card at ``path`` once it reads (else its one line is shown) and, if it runs
    code, the user agreed to run it (else the status bar says it was not opened)."""
    try:
        card = read_card(path)
    except UserError as exc:
        show_error(str(exc))
        return None
    if card.runs_code and not ask("Run this model's code?", runs_code_question(card)):
        status(f"Model card {card.path.name} not opened.")
        return None
    return card


class ModelCardsMenu:
    """The Model menu: open a card, reopen a recent one; errors as one-line dialogs."""

    def __init__(self, window: QMainWindow, model: ModelState, prefs: Preferences,
                 show_error: Callable[[str], None], status: Callable[[str], None],
                 ask: Callable[[str, str], bool]) -> None:
        self.window, self.model, self.prefs = window, model, prefs
        self.show_error, self.status, self.ask = show_error, status, ask
        self.menu = QMenu("&Model", window)
        self.open_action = QAction("Open Model &Card...", window)
        self.open_action.setStatusTip("Explain your own model: a .toml card that names its "
                                      "source, weights and classes (docs/models.md)")
        self.open_action.triggered.connect(lambda *_a: self.choose_card())
        self.menu.addAction(self.open_action)
        self.recent_menu = self.menu.addMenu("Recent Model Cards")
        self.refresh()

    def attach(self, before: QAction | None = None) -> None:
        """Put the Model menu into the window's menu bar (before ``before``)."""
        bar = self.window.menuBar()
        if before is not None:
            bar.insertMenu(before, self.menu)
        else:
            bar.addMenu(self.menu)

    def choose_card(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open model card",
                                              self.prefs.last_folder, CARD_FILTER)
        if path:
            self.open_card(path)

    def open_card(self, path: str) -> bool:
        """Check the card (one line if it is wrong), ask before running code, choose it."""
        card = confirmed_card(path, self.show_error, self.ask, self.status)
        if card is None:
            return False
        resolved = str(card.path.resolve())
        self.prefs.add_recent_card(resolved)
        self.refresh()
        self.model.choose_card(resolved, card.size)  # its weights, at its working size
        self.status(f"Model card {card.name}" + (" (runs your code)" if card.runs_code else ""))
        return True

    def refresh(self) -> None:
        self.recent_menu.clear()
        cards = self.prefs.recent_cards()
        for i, path in enumerate(cards):
            action = self.recent_menu.addAction(f"&{(i + 1) % 10} {Path(path).name}")
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(partial(self.open_card, path))
        if cards:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent Model Cards", self._clear)
        self.recent_menu.setEnabled(bool(cards))

    def _clear(self) -> None:
        self.prefs.clear_recent_cards()
        self.refresh()


def safe_start_choice(choice: ModelChoice, default: ModelChoice) -> tuple[ModelChoice, str]:
    """The stored model choice, unless it is a card that runs code (never rerun unasked)
    or a card that is gone: then the default, with a status line saying why."""
    if not is_card_path(choice.architecture):
        return choice, ""
    try:
        card = read_card(choice.architecture)
    except UserError as exc:
        return _replace_model(choice, default), f"Last model card not reopened: {exc}"
    if card.runs_code:
        return (_replace_model(choice, default),
                f"Model card {card.path.name} runs Python code: reopen it from Model > "
                "Recent Model Cards to use it again.")
    return choice, ""


def _replace_model(choice: ModelChoice, default: ModelChoice) -> ModelChoice:
    from dataclasses import replace

    return replace(choice, architecture=default.architecture, weights=default.weights)
