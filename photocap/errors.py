"""Errors that carry a message meant for the user.

Every layer raises a :class:`PhotocapError` (or a subclass) for a problem the
user can act on; the front ends show ``str(error)`` without a traceback.
"""

from __future__ import annotations


class PhotocapError(Exception):
    """A problem the user can fix; the message says what happened and what to do."""


class ModelError(PhotocapError):
    """A model file is missing, malformed, or does not match what the code expects."""


class IndexDatabaseError(PhotocapError):
    """The SQLite index cannot be opened, migrated or written."""


class QueryError(PhotocapError):
    """A search query photocap refuses to run (too long, too many words)."""


class MetadataError(PhotocapError):
    """Metadata could not be read from or written into a photo."""


class DatasetError(PhotocapError):
    """A training or evaluation dataset is missing or has no usable rows."""


class MissingRootError(PhotocapError):
    """A folder or file given to index, watch or write is not there (an unmounted drive?)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: no such file or folder (is the drive mounted?).")
        self.path = path


class DecodePoolError(PhotocapError):
    """The image decoding worker processes keep failing to start or crashing."""


class ClusterUnavailable(PhotocapError):
    """Captioning on a Ray cluster was asked for, but Ray is not installed (the ``cluster`` extra)."""


class ClusterError(PhotocapError):
    """The Ray cluster could not be reached, or its caption workers failed past their retries."""


class NotIndexedError(IndexDatabaseError):
    """A photo the command needs is not in the index."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not in the index; index its folder first.")
        self.path = path


class BackendFallbackWarning(RuntimeWarning):
    """The backend asked for (ONNX Runtime) cannot be used; photocap goes on with torch. The CLI
    prints its message alone on stderr."""


class MeaningUnavailable(PhotocapError):
    """Search by meaning cannot run here (its sentence model is missing or broken); words still work."""


class EmbeddingHeadWarning(RuntimeWarning):
    """The image-embedding head beside the model file does not fit it (made for another encoder, damaged);
    photocap captions without image vectors. The CLI prints its message alone on stderr."""
