"""The window's status bar and its messages: the pixel under the cursor, the running job
with its progress and Cancel, the untrained badge, the model's device; and what the
document says besides its states (failures as one-line dialogs, notices, the offer of
another way when weights are missing, saved files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar, QSizePolicy, QToolButton

from .dialogs import Dialogs
from .document import Document
from .document.messages import Failure, Notice, OfflineOffer, Saved
from .jobs import JobRunner
from .settings import Preferences

LOADING_TORCH = "Loading PyTorch..."


class WindowStatus:
    """The status bar's widgets, fed by the runner and the document."""

    def __init__(self, window: QMainWindow, badge_style: str) -> None:
        self.window = window
        self.last_error: str | None = None  # the latest failure's line (scripts, tests)
        bar = window.statusBar()
        bar.setSizeGripEnabled(True)
        self.hover_label = QLabel("", window)
        self.hover_label.setObjectName("hoverLabel")
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                       QSizePolicy.Policy.Preferred)
        bar.addWidget(self.hover_label, 1)
        self.job_label = QLabel("", window)
        self.job_label.setObjectName("jobLabel")
        self.progress = QProgressBar(window)
        self.progress.setObjectName("jobProgress")
        self.progress.setFixedWidth(160)
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(False)
        self.cancel_button = QToolButton(window)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running computation (Esc)")
        self.badge = QLabel("UNTRAINED", window)
        self.badge.setObjectName("statusUntrained")
        self.badge.setStyleSheet(badge_style)
        self.device_label = QLabel("", window)
        self.device_label.setObjectName("deviceLabel")
        for widget in (self.job_label, self.progress, self.cancel_button, self.badge,
                       self.device_label):
            bar.addPermanentWidget(widget)
        self.set_busy(False)

    def bind(self, doc: Document, runner: JobRunner, dialogs: Dialogs, prefs: Preferences,
             choose_weights: Callable[[], None]) -> None:
        """Jobs' progress from ``runner``; the document's messages; Cancel cancels all."""
        self.cancel_button.clicked.connect(doc.cancel_all)
        runner.progress.connect(self._on_progress)
        runner.activity_changed.connect(lambda: self._on_activity(runner))
        runner.failed.connect(lambda ch, msg, det: self.fail(Failure(ch, msg, det), dialogs))
        doc.failed.connect(lambda failure: self.fail(failure, dialogs))
        doc.notice.connect(self._on_notice)
        doc.saved.connect(lambda saved: self._on_saved(saved, prefs))

        def offline(offer: OfflineOffer) -> None:
            self.last_error = offer.message
            dialogs.offline(offer.architecture, offer.message, choose_weights,
                            lambda: setattr(doc.model, "weights", "untrained"))

        doc.offline.connect(offline)

    def show(self, message: str, timeout_ms: int = 0) -> None:
        self.window.statusBar().showMessage(message, timeout_ms)

    def fail(self, failure: Failure, dialogs: Dialogs) -> None:
        self.last_error = failure.message
        self.show(failure.message, 8000)
        dialogs.error(failure.message, failure.details)

    def set_device(self, untrained: bool, text: str) -> None:
        self.badge.setVisible(untrained)
        self.device_label.setText(text)

    def set_busy(self, busy: bool) -> None:
        for widget in (self.job_label, self.progress, self.cancel_button):
            widget.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def _on_notice(self, notice: Notice) -> None:
        bar = self.window.statusBar()
        if notice.replaces is not None and bar.currentMessage() == notice.replaces:
            bar.clearMessage()
        if notice.text:
            self.show(notice.text, notice.timeout_ms)
        if notice.text == LOADING_TORCH:
            self.job_label.setText(notice.text)

    def _on_saved(self, saved: Saved, prefs: Preferences) -> None:
        path = Path(saved.path)
        prefs.last_export_folder = str(path if path.is_dir() else path.parent)
        self.show(saved.message, 6000)

    def _on_progress(self, channel: str, done: int, total: int, message: str) -> None:
        self.job_label.setText(message)
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * min(done, total) / total))
        else:
            self.progress.setRange(0, 0)

    def _on_activity(self, runner: JobRunner) -> None:
        channels = runner.active_channels()
        self.set_busy(bool(channels))
        if channels:
            if not self.job_label.text():
                self.job_label.setText("Working...")
        else:
            self.job_label.setText("")
