"""How long a search holds the desktop app's UI thread, per search mode, on a real index.

Opens the real MainWindow offscreen over an index built by ``bench/bench_meaning.py`` (default:
its 1,080-photo ``all.db``) and measures:

* the sentence model's load, which runs off the UI thread: its wall time, and the longest stall
  of the UI event loop meanwhile (a 5 ms timer's worst gap; what a user would feel);
* each search as the window runs it once the debounce fires (``MainWindow.run_search``: the
  library search, query embedding included, and the grid's first page), p50 / p95 / max, for
  the 20 synonym queries, 36 COCO category names and 200 Flickr8k sentences.

    python bench/bench_gui_search.py
    python bench/bench_gui_search.py --db /tmp/photocap-meaning/all.db --sentences 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_meaning import DATA, SYNONYMS, coco_largest, f8k_dev, first_captions, pct  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, default=Path("/tmp/photocap-meaning/all.db"))
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--modes", nargs="+", default=["words", "hybrid", "meaning"])
    args = ap.parse_args()
    if not args.db.exists():
        sys.exit(f"{args.db} is missing: run bench/bench_meaning.py first (it builds it)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from photocap.gui.compat import protect_none
    from photocap.gui.window import MainWindow

    protect_none()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    sentences = first_captions(DATA / "flickr8k" / "captions.txt")
    queries = SYNONYMS + sorted(set(coco_largest().values())) + [sentences[n] for n in f8k_dev()[:args.sentences]]

    with tempfile.TemporaryDirectory(prefix="photocap-guibench-") as tmp:
        window = MainWindow(args.db, thumbnail_dir=Path(tmp) / "thumbs")
        window.resize(1180, 720)
        window.show()
        QTest.qWaitForWindowExposed(window)

        # the model's load, off the UI thread: how long, and the worst event-loop stall meanwhile
        gaps: list[float] = []
        clock = QElapsedTimer()
        clock.start()
        last = [clock.nsecsElapsed()]

        def tick() -> None:
            now = clock.nsecsElapsed()
            gaps.append((now - last[0]) / 1e6)
            last[0] = now

        ticker = QTimer()
        ticker.setInterval(5)
        ticker.timeout.connect(tick)
        ticker.start()
        t0 = time.perf_counter()
        window.meaning.load()
        while window.meaning.loading:
            app.processEvents()
            time.sleep(0.001)
        load_s = time.perf_counter() - t0
        ticker.stop()
        print(f"sentence model load (worker thread): {load_s * 1000:.0f} ms; "
              f"worst UI stall meanwhile {max(gaps or [0]):.0f} ms (5 ms timer, {len(gaps)} ticks)"
              + (f"; unavailable: {window.meaning.error}" if window.meaning.error else ""))

        print(f"\n{len(queries)} queries on {args.db} ({window.model.total if window.model else 0} photos listed)")
        print("| mode | run_search p50 | p95 | max |")
        print("| --- | --- | --- | --- |")
        for mode in args.modes:
            window.set_search_mode(mode)
            times: list[float] = []
            for q in queries:
                window.search_box.blockSignals(True)  # no debounce timer: time the search itself
                window.search_box.setText(q)
                window.search_box.blockSignals(False)
                t = time.perf_counter()
                window.run_search()
                times.append((time.perf_counter() - t) * 1000)
                app.processEvents()
            print(f"| {mode} | {statistics.median(times):.1f} ms | {pct(times, 0.95):.1f} ms | {max(times):.1f} ms |")
        window.close()


if __name__ == "__main__":
    main()
