"""Settings remembered between runs (QSettings, INI format in the user's config folder)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings

from .document.choices import (
    ATTRIBUTION,
    AnalysisChoice,
    ModelChoice,
    ViewChoice,
    from_dict,
    to_dict,
)

if TYPE_CHECKING:
    from .document import Document

ORGANIZATION = "SegExplorer"
APPLICATION = "SegExplorer"
MAX_RECENT = 10


def make_settings() -> QSettings:
    """The user's settings (tests redirect them with ``QSettings.setPath``)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                     ORGANIZATION, APPLICATION)


def _group(settings: QSettings, name: str) -> dict:
    settings.beginGroup(name)
    try:
        return {key: settings.value(key) for key in settings.childKeys()}
    finally:
        settings.endGroup()


def _store(settings: QSettings, name: str, values: dict) -> None:
    settings.beginGroup(name)
    try:
        for key, value in values.items():
            settings.setValue(key, value)
    finally:
        settings.endGroup()


class Preferences:
    """Typed access to the stored choices, folders and recent files."""

    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    # choices
    def model_choice(self, default: ModelChoice) -> ModelChoice:
        return from_dict(ModelChoice, _group(self.settings, "model"), default)

    def analysis_choice(self) -> AnalysisChoice:
        return from_dict(AnalysisChoice, _group(self.settings, "analysis"))

    def view_choice(self) -> ViewChoice:
        return from_dict(ViewChoice, _group(self.settings, "view"))

    def save_choices(self, model: ModelChoice, analysis: AnalysisChoice,
                     view: ViewChoice) -> None:
        _store(self.settings, "model", to_dict(model))
        _store(self.settings, "analysis", to_dict(analysis))
        _store(self.settings, "view", to_dict(view))

    def opacities(self) -> dict[str, float]:
        out = {}
        for key, value in _group(self.settings, "opacity").items():
            try:
                out[key] = min(1.0, max(0.0, float(value)))
            except (TypeError, ValueError):
                continue
        return out

    def save_opacities(self, values: dict[str, float]) -> None:
        _store(self.settings, "opacity", values)

    def value(self, key: str, default=None):
        return self.settings.value(key, default)

    def set_value(self, key: str, value) -> None:
        self.settings.setValue(key, value)

    # folders and files
    @property
    def last_folder(self) -> str:
        folder = str(self.settings.value("files/last_folder", "") or "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self.settings.setValue("files/last_folder", str(folder))

    @property
    def last_export_folder(self) -> str | None:
        """Where the latest export went (None: nothing exported yet, or it is gone)."""
        folder = str(self.settings.value("files/last_export_folder", "") or "")
        return folder if folder and Path(folder).is_dir() else None

    @last_export_folder.setter
    def last_export_folder(self, folder: str) -> None:
        self.settings.setValue("files/last_export_folder", str(folder))

    def recent_files(self) -> list[str]:
        value = self.settings.value("files/recent", [])
        if isinstance(value, str):
            value = [value] if value else []
        items = value if isinstance(value, (list, tuple)) else []
        return [str(v) for v in items if v][:MAX_RECENT]

    def add_recent_file(self, path: str) -> list[str]:
        path = str(Path(path).expanduser().resolve())
        files = [path] + [f for f in self.recent_files() if f != path]
        self.settings.setValue("files/recent", files[:MAX_RECENT])
        return files[:MAX_RECENT]

    def clear_recent_files(self) -> None:
        self.settings.setValue("files/recent", [])

    def recent_cards(self) -> list[str]:
        """Model cards opened before, newest first."""
        value = self.settings.value("models/recent_cards", [])
        if isinstance(value, str):
            value = [value] if value else []
        items = value if isinstance(value, (list, tuple)) else []
        return [str(v) for v in items if v][:MAX_RECENT]

    def add_recent_card(self, path: str) -> list[str]:
        path = str(Path(path).expanduser().resolve())
        cards = [path] + [c for c in self.recent_cards() if c != path]
        self.settings.setValue("models/recent_cards", cards[:MAX_RECENT])
        return cards[:MAX_RECENT]

    def clear_recent_cards(self) -> None:
        self.settings.setValue("models/recent_cards", [])

    def sync(self) -> None:
        self.settings.sync()

    # the document
    def document_choices(self, model: ModelChoice) -> dict[str, Any]:
        """The stored choices, as ``Document``'s keyword arguments (``model``: the model
        choice to start with, already checked)."""
        return {"model": model, "analysis": self.analysis_choice(),
                "view": self.view_choice(),
                "canvas_layer": str(self.value("view/layer", ATTRIBUTION) or ATTRIBUTION),
                "opacity": self.opacities(),
                "outline": str(self.value("view/outline", "true")) == "true"}

    def save_document(self, doc: Document) -> None:
        """The document's choices, for the next start."""
        self.save_choices(doc.model.choice, doc.analysis.choice, doc.view.choice)
        self.save_opacities(doc.layers.opacity)
        self.set_value("view/layer", doc.layers.chosen)
        self.set_value("view/outline", "true" if doc.layers.outline else "false")
