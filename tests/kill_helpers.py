"""Run in a subprocess by the kill tests: ``python kill_helpers.py MODE DB FOLDER``.

MODE ``slow``: index FOLDER with two decode workers and a captioner that takes a minute
per batch; print READY once the workers are decoding (the test then SIGKILLs this process).
MODE ``die-before-write``: index FOLDER with --write-metadata; the first time a caption is
about to be written into a file (its batch already committed), SIGKILL this process.
MODE ``write``: index FOLDER with --write-metadata, to the end (the rerun).
MODE ``loop``: index FOLDER with --write-metadata and two decode workers, batches of two,
printing ``OUTCOME <event>`` as the progress reports them (the crash loop SIGKILLs it after a
random number of those).
MODE ``index-only``: index FOLDER without writing into the files (before a ``write`` is killed).
Captions come from a fake captioner (fast, deterministic, one distinct caption per image).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time


class FakeCaptioner:
    model_id = "fake-v1"
    image_size = 32

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def describe_images(self, images):  # type: ignore[no-untyped-def]
        from photocap.records import Described

        time.sleep(self.delay)
        words = ("red", "blue", "green", "small", "large", "quiet", "busy", "bright")
        out = []
        for img in images:
            h = hashlib.blake2b(img.tobytes(), digest_size=4).digest()
            out.append(Described(f"a {words[h[0] % 8]} {words[h[1] % 8]} photo of a {words[h[2] % 8]} scene", -0.5))
        return out


def main() -> None:
    mode, db, folder = sys.argv[1:4]
    from photocap.index.store import CaptionIndex
    from photocap.library import pipeline, sync

    if mode == "slow":
        options = pipeline.IndexOptions(workers=2, batch_size=2)
        captioner = FakeCaptioner(delay=60.0)

        def on_progress(p: pipeline.Progress) -> None:
            if p.phase == "index":
                print("READY", flush=True)
    else:
        options = pipeline.IndexOptions(workers=0, batch_size=4, write_metadata=mode != "index-only")
        captioner = FakeCaptioner()
        on_progress = None  # type: ignore[assignment]
        if mode == "loop":
            options = pipeline.IndexOptions(workers=2, batch_size=2, write_metadata=True)

            def on_progress(p: pipeline.Progress) -> None:
                for o in p.outcomes:
                    print(f"OUTCOME {o.outcome}", flush=True)
        if mode == "die-before-write":
            real = sync.write_caption

            def die(*args, **kwargs):  # type: ignore[no-untyped-def]
                os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)

            sync.write_caption = die  # type: ignore[assignment]
    print("STARTED", flush=True)
    with CaptionIndex.open(db) as index:
        summary = pipeline.index_folders([folder], index, lambda: captioner, options, on_progress=on_progress)
    print(f"DONE captioned={summary.captioned} written={summary.written} adopted={summary.adopted}", flush=True)



def crash_on_bad(name: str) -> str:
    """A decode-pool job that kills its worker process for the item "bad" (as a file that
    crashes the image decoder does), and returns the name in capitals otherwise."""
    if name == "bad":
        os._exit(70)
    time.sleep(0.05)
    return name.upper()


if __name__ == "__main__":
    main()
