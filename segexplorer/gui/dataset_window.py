"""File > Open Dataset... and Run Batch on Folder...: a thin Qt view over the dataset
document (``document/dataset.py``).

The window shows one :class:`~.document.dataset.DatasetView`: a sortable table of images
x classes with their figures, the same images as thumbnails, the context matrix as a
heat map whose cells list the images behind them, and the errors. Clicks and choices edit
the dataset state; double-clicking an image asks for it to be opened in the explainer
with the batch's model (``dataset_controller.DatasetController`` does that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QSize, Qt
from PySide6.QtGui import QColor, QImageReader, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
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

from .document.dataset import DatasetState
from .document.dataset_view import DatasetView, TableRow, Tile
from .screen_fit import fit_to_screen

DATASET_WINDOW_SIZE = (1100, 760)  # where the screen has room for it
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

    def __init__(self, document: DatasetState, run_requested: Callable[[], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("datasetWindow")
        self.document = document
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
        self.run_button.setToolTip("Continue this folder's batch, or explain every image "
                                   "of a folder: choose the methods, classes and working size")
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
        self.progress.setMinimumWidth(330)  # '120/1000 images - 1.85 images/s - ETA 7m56s'
        self.progress.setTextVisible(True)
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
        self.run_button.clicked.connect(lambda: run_requested())
        document.notice.connect(lambda text: self.statusBar().showMessage(text, 8000))
        fit_to_screen(self, *DATASET_WINDOW_SIZE)

    # ======================================================================= applying
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
        shown = (view.columns, tuple(row.texts for row in view.rows))
        if view.columns and shown != self._shown_columns:
            # every time the rows change (a batch adds them, the class list filters
            # them): a class name that arrives later is not cut ("ba...nd")
            self._shown_columns = shown
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
            bar = view.progress
            self.progress.setRange(0, max(bar.total, 1))
            self.progress.setValue(bar.done)
            self.progress.setFormat(bar.text)
            self.progress_label.setText(bar.line)
        elif running:
            self.progress.setRange(0, 0)
            self.progress.setFormat("")
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
            self.document.open_image(row.image, row.class_index, row.class_name or None)

    def _on_tile_activated(self, index: QModelIndex) -> None:
        if 0 <= index.row() < len(self.tiles.tiles):
            tile = self.tiles.tiles[index.row()]
            self.document.open_image(tile.image, tile.class_index)

    def _on_cell_clicked(self, row: int, column: int) -> None:
        if self.rows.view is None:
            return
        classes = self.rows.view.heatmap.classes
        if 0 <= row < len(classes) and 0 <= column < len(classes):
            self.document.select_cell(classes[row], classes[column])

    def _on_cell_image_activated(self, item: QListWidgetItem) -> None:
        selected = self.rows.view.heatmap.selected if self.rows.view is not None else None
        self.document.open_image(str(item.data(Qt.ItemDataRole.UserRole)),
                                 selected[0] if selected is not None else None)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        # a running batch goes on (the main window's runner owns it); the window only hides
        event.accept()
