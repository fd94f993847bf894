"""File > Open Dataset... and Run Batch on Folder...: a thin Qt view over the dataset
document (``document/dataset.py``).

The window shows one :class:`~.document.dataset.DatasetView`: a sortable table of images
x classes with their figures, the same images as thumbnails, the context matrix as a
heat map whose cells list the images behind them, and the errors. Clicks and choices go
to the document; double-clicking an image asks the main window to open it in the
explainer with the batch's model (:class:`DatasetController` does that).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QSize, Qt
from PySide6.QtGui import QAction, QColor, QImageReader, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .document.dataset import DatasetDocument, DatasetView, OpenRequest, TableRow, Tile

if TYPE_CHECKING:
    from .main_window import MainWindow

THUMBNAIL = 144  # px, the longer side of a tile's picture


class RowsModel(QAbstractTableModel):
    """The view's table rows (sorting is the document's: a header click asks it)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.view: DatasetView | None = None

    def show(self, view: DatasetView) -> None:
        self.beginResetModel()
        self.view = view
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | Any = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if self.view is None or parent.isValid() else len(self.view.rows)

    def columnCount(self, parent: QModelIndex | Any = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if self.view is None or parent.isValid() else len(self.view.columns)

    def row(self, index: int) -> TableRow | None:
        if self.view is None or not 0 <= index < len(self.view.rows):
            return None
        return self.view.rows[index]

    def data(self, index: QModelIndex | Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.row(index.row())
        if row is None or self.view is None:
            return None
        column = self.view.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.texts[index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 0:
            return f"{row.image}: double-click to explain it"
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if self.view is None or orientation != Qt.Orientation.Horizontal:
            return None
        column = self.view.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.label
        if role == Qt.ItemDataRole.ToolTipRole:
            return column.tooltip or None
        return None


class TilesModel(QAbstractListModel):
    """Thumbnails in the table's order; pictures are read when first shown (scaled while
    decoding, so a 12-megapixel photo costs a thumbnail's work), then kept."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.tiles: tuple[Tile, ...] = ()
        self._pixmaps: dict[str, QPixmap] = {}

    def show(self, tiles: tuple[Tile, ...]) -> None:
        self.beginResetModel()
        self.tiles = tiles
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | Any = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.tiles)

    def data(self, index: QModelIndex | Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not 0 <= index.row() < len(self.tiles):
            return None
        tile = self.tiles[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return tile.caption
        if role == Qt.ItemDataRole.ToolTipRole:
            return tile.tooltip
        if role == Qt.ItemDataRole.DecorationRole:
            return self.pixmap(tile.picture)
        return None

    def pixmap(self, path: str) -> QPixmap:
        cached = self._pixmaps.get(path)
        if cached is None:
            reader = QImageReader(path)
            reader.setAutoTransform(True)
            size = reader.size()
            if size.isValid() and max(size.width(), size.height()) > THUMBNAIL:
                reader.setScaledSize(size.scaled(THUMBNAIL, THUMBNAIL,
                                                 Qt.AspectRatioMode.KeepAspectRatio))
            image = reader.read()
            cached = QPixmap.fromImage(image) if not image.isNull() else QPixmap()
            self._pixmaps[path] = cached
        return cached


class OutlineSelection(QStyledItemDelegate):
    """Draws a selected cell in its own colour with a dark outline (the selection
    highlight would hide the very colour the user picked it for)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | Any) -> None:
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        plain = QStyleOptionViewItem(option)
        plain.state &= ~QStyle.StateFlag.State_Selected
        plain.state &= ~QStyle.StateFlag.State_HasFocus
        super().paint(painter, plain, index)
        if selected:
            painter.save()
            painter.setPen(QPen(QColor(20, 20, 20), 3))
            painter.drawRect(option.rect.adjusted(1, 1, -2, -2))
            painter.restore()


class HeatmapTable(QTableWidget):
    """The context matrix: square-ish coloured cells that grow with the window (up to a
    comfortable size); the picked cell is outlined, keeping its colour."""

    MIN_CELL, MAX_CELL = 58, 112

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setItemDelegate(OutlineSelection(self))
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)

    def fit_cells(self) -> None:
        n = self.columnCount()
        if n == 0:
            return
        items = [self.horizontalHeaderItem(i) for i in range(n)]
        names = [item.text() for item in items if item is not None]
        metrics = self.fontMetrics()
        widest = max((metrics.horizontalAdvance(name) for name in names), default=0) + 14
        room_w = self.viewport().width() if self.isVisible() else 600
        room_h = self.viewport().height() if self.isVisible() else 400
        side = max(self.MIN_CELL, min(self.MAX_CELL, room_w // n, int(room_h // n * 1.6)))
        width = max(side, widest)
        height = max(40, min(int(side * 0.62), 72))
        self.horizontalHeader().setDefaultSectionSize(width)
        self.verticalHeader().setDefaultSectionSize(height)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit_cells()


class DatasetWindow(QMainWindow):
    """A batch output folder: table, thumbnails, context matrix, errors."""

    def __init__(self, document: DatasetDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("datasetWindow")
        self.document = document
        self.run_requested: Any = None  # set by the controller: () -> None
        self._shown_columns: tuple[Any, ...] = ()
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        top = QHBoxLayout()
        self.summary = QLabel("", self)
        self.summary.setObjectName("datasetSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.summary, 1)
        top.addWidget(QLabel("Class:", self))
        self.class_filter = QComboBox(self)
        self.class_filter.setObjectName("classFilter")
        self.class_filter.setMinimumContentsLength(14)
        self.class_filter.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        top.addWidget(self.class_filter)
        self.reload_button = QPushButton("Reload", self)
        self.reload_button.setToolTip("Read the folder again (a batch may still be writing)")
        top.addWidget(self.reload_button)
        self.run_button = QPushButton("Run Batch...", self)
        self.run_button.setToolTip("Explain every image of a folder with the main window's "
                                   "model and options")
        top.addWidget(self.run_button)
        layout.addLayout(top)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("datasetTabs")
        self.table = QTableView(self)
        self.table.setObjectName("imagesTable")
        self.rows = RowsModel(self.table)
        self.table.setModel(self.rows)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tabs.addTab(self.table, "Images")

        self.thumbnails = QListView(self)
        self.thumbnails.setObjectName("thumbnails")
        self.tiles = TilesModel(self.thumbnails)
        self.thumbnails.setModel(self.tiles)
        self.thumbnails.setViewMode(QListView.ViewMode.IconMode)
        self.thumbnails.setResizeMode(QListView.ResizeMode.Adjust)
        self.thumbnails.setMovement(QListView.Movement.Static)
        self.thumbnails.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.thumbnails.setGridSize(QSize(THUMBNAIL + 48, THUMBNAIL + 62))
        self.thumbnails.setUniformItemSizes(True)
        self.thumbnails.setWordWrap(True)
        self.thumbnails.setSpacing(4)
        self.tabs.addTab(self.thumbnails, "Thumbnails")

        context = QSplitter(Qt.Orientation.Horizontal, self)
        self.heatmap = HeatmapTable(self)
        self.heatmap.setObjectName("contextMatrix")
        self.heatmap.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.heatmap.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        context.addWidget(self.heatmap)
        side = QWidget(self)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(6, 0, 0, 0)
        self.matrix_help = QLabel("Rows: the class whose score changes. Columns: the class "
                                  "whose segments are ablated. Each cell: the mean relative "
                                  "change over the images holding both, and their count.",
                                  self)
        self.matrix_help.setWordWrap(True)
        side_layout.addWidget(self.matrix_help)
        self.cell_caption = QLabel("", self)
        self.cell_caption.setObjectName("cellCaption")
        self.cell_caption.setWordWrap(True)
        side_layout.addWidget(self.cell_caption)
        self.cell_images = QListWidget(self)
        self.cell_images.setObjectName("cellImages")
        side_layout.addWidget(self.cell_images, 1)
        context.addWidget(side)
        context.setStretchFactor(0, 3)
        context.setStretchFactor(1, 2)
        self.tabs.addTab(context, "Context matrix")

        self.errors_table = QTableWidget(0, 2, self)
        self.errors_table.setObjectName("errorsTable")
        self.errors_table.setHorizontalHeaderLabels(["Image", "Why it could not be explained"])
        self.errors_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.errors_table.horizontalHeader().setStretchLastSection(True)
        self.errors_table.verticalHeader().setVisible(False)
        self.errors_table.setWordWrap(False)
        self.tabs.addTab(self.errors_table, "Errors")
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        status = self.statusBar()
        self.progress_label = QLabel("", self)
        self.progress_label.setObjectName("batchProgressLabel")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("batchProgress")
        self.progress.setFixedWidth(180)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Stop")
        self.cancel_button.setToolTip("Stop the batch after the image it is explaining (run it "
                                      "again to continue)")
        status.addWidget(self.progress_label, 1)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.cancel_button)

        self.class_filter.activated.connect(
            lambda i: document.set_class_filter(self.class_filter.itemData(i)))
        header.sectionClicked.connect(self._on_header_clicked)
        self.table.doubleClicked.connect(self._on_row_activated)
        self.thumbnails.doubleClicked.connect(self._on_tile_activated)
        self.heatmap.cellClicked.connect(self._on_cell_clicked)
        self.cell_images.itemDoubleClicked.connect(self._on_cell_image_activated)
        self.reload_button.clicked.connect(lambda: document.reload())
        self.cancel_button.clicked.connect(lambda: document.cancel_batch())
        self.run_button.clicked.connect(lambda: self.run_requested and self.run_requested())
        document.changed.connect(lambda _none: self.refresh())
        document.notice.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.resize(1100, 760)
        self.refresh()

    # ======================================================================= applying
    def refresh(self) -> None:
        self.apply(self.document.present())

    def apply(self, view: DatasetView) -> None:
        self.setWindowTitle(view.title)
        self.summary.setText(view.summary)
        self.summary.setToolTip(view.folder)
        self.reload_button.setEnabled(bool(view.folder))
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        for value, label in view.class_choices:
            self.class_filter.addItem(label, value)
        self.class_filter.setCurrentIndex(max(0, self.class_filter.findData(view.class_filter)))
        self.class_filter.blockSignals(False)
        self.rows.show(view)
        keys = [c.key for c in view.columns]
        header = self.table.horizontalHeader()
        if view.sort[0] in keys:
            header.setSortIndicator(keys.index(view.sort[0]),
                                    Qt.SortOrder.DescendingOrder if view.sort[1]
                                    else Qt.SortOrder.AscendingOrder)
        if view.columns and view.columns != self._shown_columns:
            self._shown_columns = view.columns
            self.table.resizeColumnsToContents()
            self.table.setColumnWidth(0, min(max(self.table.columnWidth(0), 120), 420))
        self.tiles.show(view.tiles)
        self._apply_heatmap(view)
        self.errors_table.setRowCount(len(view.errors))
        for i, (image, error) in enumerate(view.errors):
            self.errors_table.setItem(i, 0, QTableWidgetItem(image))
            item = QTableWidgetItem(error)
            item.setToolTip(error)
            self.errors_table.setItem(i, 1, item)
        if view.errors:
            self.errors_table.resizeColumnToContents(0)
        self.tabs.setTabText(3, f"Errors ({len(view.errors)})" if view.errors else "Errors")
        running = view.running
        for widget in (self.progress, self.cancel_button):
            widget.setVisible(running)
        self.run_button.setEnabled(not running)
        if running and view.progress is not None:
            done, total, line = view.progress
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            self.progress_label.setText(line)
        elif running:
            self.progress.setRange(0, 0)
            self.progress_label.setText("Loading the model...")
        else:
            self.progress_label.setText(self.document.last_message)

    def _apply_heatmap(self, view: DatasetView) -> None:
        heat = view.heatmap
        table = self.heatmap
        table.blockSignals(True)
        table.clear()
        table.setRowCount(len(heat.classes))
        table.setColumnCount(len(heat.classes))
        table.setHorizontalHeaderLabels(list(heat.names))
        table.setVerticalHeaderLabels(list(heat.names))
        for i, row in enumerate(heat.cells):
            for j, cell in enumerate(row):
                item = QTableWidgetItem(cell.text if cell is not None else "")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if cell is not None:
                    item.setBackground(QColor(*cell.color))
                    item.setForeground(QColor(*cell.text_color))
                    item.setToolTip(cell.tooltip)
                else:
                    item.setBackground(QColor(221, 221, 221))
                    item.setFlags(Qt.ItemFlag.NoItemFlags)
                    item.setToolTip("No image holds both classes")
                table.setItem(i, j, item)
        table.fit_cells()
        if heat.selected is not None and heat.selected[0] in heat.classes \
                and heat.selected[1] in heat.classes:
            table.setCurrentCell(heat.classes.index(heat.selected[0]),
                                 heat.classes.index(heat.selected[1]))
        table.blockSignals(False)
        self.cell_caption.setText(heat.caption)
        self.cell_images.clear()
        for key, change in heat.images:
            entry = QListWidgetItem(f"{change:>7}   {key}")
            entry.setData(Qt.ItemDataRole.UserRole, key)
            entry.setToolTip(f"{key}: double-click to explain it")
            self.cell_images.addItem(entry)

    # ======================================================================= events
    def _on_header_clicked(self, section: int) -> None:
        view = self.rows.view
        if view is not None and 0 <= section < len(view.columns):
            self.document.sort_by(view.columns[section].key)

    def _on_row_activated(self, index: QModelIndex) -> None:
        row = self.rows.row(index.row())
        if row is not None:
            self.document.open_image(row.image, row.class_index)

    def _on_tile_activated(self, index: QModelIndex) -> None:
        if 0 <= index.row() < len(self.tiles.tiles):
            tile = self.tiles.tiles[index.row()]
            self.document.open_image(tile.image, tile.class_index)

    def _on_cell_clicked(self, row: int, column: int) -> None:
        classes = self.document.present().heatmap.classes
        if 0 <= row < len(classes) and 0 <= column < len(classes):
            self.document.select_cell(classes[row], classes[column])

    def _on_cell_image_activated(self, item: QListWidgetItem) -> None:
        selected = self.document.present().heatmap.selected
        self.document.open_image(str(item.data(Qt.ItemDataRole.UserRole)),
                                 selected[0] if selected is not None else None)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        # a running batch goes on (the main window's runner owns it); the window only hides
        event.accept()


class RunBatchDialog(QDialog):
    """Where the images are and where the batch writes; the model is the main window's."""

    def __init__(self, model_text: str, folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run Batch on Folder")
        form = QFormLayout(self)
        self.input = QLineEdit(folder, self)
        self.input.setObjectName("batchInput")
        self.output = QLineEdit("", self)
        self.output.setObjectName("batchOutput")
        for label, edit, title in (("Images", self.input, "Folder of images"),
                                   ("Output", self.output, "Output folder")):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            browse = QPushButton("Browse...", self)
            browse.clicked.connect(lambda _c=False, e=edit, t=title: self._browse(e, t))
            row.addWidget(browse)
            form.addRow(label, row)
        self.input.textChanged.connect(self._suggest_output)
        self._suggest_output(folder)
        note = QLabel(f"Model and options: {model_text} (the main window's). A stopped batch "
                      "continues where it stopped when run again with the same folders.", self)
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.run = buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(560, self.sizeHint().height())

    def _browse(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title, edit.text())
        if path:
            edit.setText(path)

    def _suggest_output(self, text: str) -> None:
        if text and not self.output.isModified():
            self.output.setText(str(Path(text).expanduser()) .rstrip("/\\") + "-segexplorer")


class DatasetController:
    """The main window's File > Open Dataset... and Run Batch on Folder..., the dataset
    window, and opening its images in the explainer with the batch's model."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.document = DatasetDocument(window.runner)
        self.dataset_window: DatasetWindow | None = None
        self.open_action = QAction("Open &Dataset...", window)
        self.open_action.setStatusTip("Open a folder 'segexplorer batch' wrote: its images, "
                                      "per-class figures and context matrix")
        self.open_action.triggered.connect(lambda *_a: self.choose_dataset())
        self.run_action = QAction("Run &Batch on Folder...", window)
        self.run_action.setStatusTip("Explain every image of a folder with this model and "
                                     "these options (resumable)")
        self.run_action.triggered.connect(lambda *_a: self.choose_batch())
        self.document.open_requested.connect(self.open_in_explainer)
        self.document.failed.connect(lambda message: window.dialogs.error(message))

    def attach(self, menu: Any, before: QAction | None) -> None:
        menu.insertActions(before, [self.open_action, self.run_action])

    def show_window(self) -> DatasetWindow:
        self.document.device = self.window.model_choice.device  # images open on it
        if self.dataset_window is None:
            self.dataset_window = DatasetWindow(self.document)
            self.dataset_window.run_requested = self.choose_batch
        self.dataset_window.show()
        self.dataset_window.raise_()
        return self.dataset_window

    def choose_dataset(self) -> None:
        path = QFileDialog.getExistingDirectory(self.window, "Open batch output folder",
                                                self.window.prefs.last_folder)
        if path:
            self.open_dataset(path)

    def open_dataset(self, folder: str | Path) -> DatasetWindow:
        window = self.show_window()
        self.document.open_folder(folder)
        return window

    def choose_batch(self) -> None:
        model = self.window.model_choice
        text = f"{Path(model.architecture).name} [{model.weights}] at {model.size} px on " \
               f"{model.device}"
        dialog = RunBatchDialog(text, self.window.prefs.last_folder, self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.input.text():
            self.run_batch(dialog.input.text(), dialog.output.text())

    def run_batch(self, input_folder: str | Path, out_folder: str | Path) -> DatasetWindow:
        """Run a batch with the main window's model and options; its window follows it."""
        window = self.show_window()
        self.document.run_batch(input_folder, out_folder, self.window.model_choice,
                                self.window.analysis_choice)
        return window

    def open_in_explainer(self, request: OpenRequest) -> None:
        """Open a batch image in the main window, with the batch's model and options."""
        window = self.window
        if request.card is not None and window.model_choice.architecture != request.card \
                and not window.cards.open_card(request.card):
            return  # a card that runs code, declined; or a card that is gone (shown)
        window.set_model_choice(request.model)
        window.document.set_analysis(request.analysis)
        window.open_image(request.path)
        if request.target is not None:
            window.set_target(request.target)
        window.show()
        window.raise_()
        window.activateWindow()

    def close(self) -> None:
        if self.dataset_window is not None:
            self.dataset_window.close()
