"""The photocap desktop app (PySide6): search the index, review and correct captions.

Modules (nothing here imports Qt or does work at import time; ``app.main`` does):

* ``app``        entry point: QApplication, excepthook, settings, the main window
* ``window``     MainWindow: search box, thumbnail grid, detail panel, indexing controls
* ``models``     ResultsModel: a lazily paged QAbstractListModel over search results
* ``delegate``   ThumbnailDelegate: thumbnail + caption elided to two lines
* ``thumbnails`` ThumbnailCache: off-thread thumbnails, cached on disk and in memory
* ``workers``    IndexWorker: ``library.pipeline.index_folders`` in a QThread, cancellable
* ``detail``     DetailPanel: larger image, editable caption, facts, actions
* ``desktop``    open in the system viewer, reveal in the file manager, clipboard
* ``errors``     user-facing error text and the uncaught-exception dialog

Arrows: gui -> library, index, metadata (and inference through the pipeline); never cli.
"""
