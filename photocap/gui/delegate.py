"""ThumbnailDelegate: paints one grid cell (thumbnail above, caption elided to two lines)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette, QTextLayout, QTextOption
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from photocap.gui.models import THUMB_PX, ThumbErrorRole

PADDING = 6
CAPTION_LINES = 2


def elide_lines(text: str, font: QFont, width: int, lines: int) -> list[str]:
    """Wrap ``text`` to ``width`` pixels in at most ``lines`` lines, eliding the last one."""
    metrics = QFontMetrics(font)
    layout = QTextLayout(text, font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(option)
    out: list[str] = []
    layout.beginLayout()
    while len(out) < lines:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        start, length = line.textStart(), line.textLength()
        if len(out) == lines - 1:
            rest = text[start:].strip()
            out.append(metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width))
        else:
            out.append(text[start:start + length].strip())
    layout.endLayout()
    return [s for s in out if s] or [""]


class ThumbnailDelegate(QStyledItemDelegate):
    """A fixed-size cell: the thumbnail centred in a square, then two lines of caption."""

    def __init__(self, thumb_px: int = THUMB_PX, parent: object = None) -> None:
        super().__init__(parent)
        self.thumb_px = thumb_px

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        line = option.fontMetrics.lineSpacing()
        return QSize(self.thumb_px + 2 * PADDING, self.thumb_px + CAPTION_LINES * line + 3 * PADDING)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        painter.save()
        try:
            self._paint(painter, option, index)
        finally:
            painter.restore()

    def _paint(self, painter: QPainter, option: QStyleOptionViewItem,
               index: QModelIndex | QPersistentModelIndex) -> None:
        rect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
            painter.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 6, 6)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
            painter.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 6, 6)

        box = QRect(rect.x() + PADDING, rect.y() + PADDING, self.thumb_px, self.thumb_px)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if pixmap is not None and not pixmap.isNull():
            size = pixmap.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            target.moveBottom(box.bottom())  # sit on the caption, like a file manager
            painter.drawPixmap(target, pixmap)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Midlight))
            painter.drawRoundedRect(box.adjusted(8, 8, -8, -8), 4, 4)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            error = index.data(ThumbErrorRole)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "can't read\nthis file" if error else "…")

        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        metrics = option.fontMetrics
        width = rect.width() - 2 * PADDING
        top = box.bottom() + PADDING
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(palette.color(role))
        painter.setFont(option.font)
        for i, line in enumerate(elide_lines(text, option.font, width, CAPTION_LINES)):
            y = top + i * metrics.lineSpacing() + metrics.ascent()
            x = rect.x() + PADDING + max(0, (width - metrics.horizontalAdvance(line)) // 2)
            painter.drawText(QPointF(x, y), line)
