"""MessageBanner: an in-window strip for errors and notices (never a crash, never a hidden log)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

_STYLES = {  # kind -> (background, text, border)
    "error": ("#fde7e9", "#5c0011", "#f1aeb5"),
    "info": ("#e8f1fb", "#0b2e4f", "#a9c8ec"),
}


class MessageBanner(QFrame):
    """A dismissable message across the top of the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.kind = "info"
        self.label = QLabel()
        self.label.setObjectName("messageText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        """Show ``text``; ``kind`` is "error" or "info"."""
        self.kind = kind
        bg, fg, border = _STYLES.get(kind, _STYLES["info"])
        self.setStyleSheet(
            f"#messageBanner {{ background:{bg}; border:1px solid {border}; border-radius:4px; }}"
            f"#messageBanner QLabel, #messageBanner QToolButton {{ color:{fg}; background:transparent; }}"
        )
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.show()

    def text(self) -> str:
        return self.label.text()
