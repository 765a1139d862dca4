"""Whose words a description in a file is, and who may replace them.

The file itself records it: next to a description photocap writes, its XMP namespace holds
``photocap:DescriptionSource`` ("model" or "user") and ``photocap:DescriptionDigest`` (the
digest of the text written). So a description keeps its owner when the index is lost,
copied to another machine, or the photo is opened in another app and edited there (the
digest no longer matches: the new words are that person's).

:func:`owner_of` classifies one value; :func:`may_replace` is THE overwrite rule the writer
applies, and the library's adopt rule (``photocap.library.sync``) reads the same owners.
"""

from __future__ import annotations

from enum import StrEnum

from photocap.records import CaptionSource

LEGACY_SOURCE_PREFIX = "photocap"  # photocap 0.1.0 wrote "photocap 0.1.0" as the source


class Owner(StrEnum):
    """Who wrote a description found in a file."""

    STOCK = "stock"  # a camera, phone or tool, not a person (photocap.metadata.stock)
    PHOTOCAP_MODEL = "photocap-model"  # photocap wrote a model's caption
    PHOTOCAP_USER = "photocap-user"  # photocap wrote a person's caption (the GUI, set-caption)
    PERSON = "person"  # someone else: another app, or an edit after photocap wrote it

    @property
    def persons(self) -> bool:
        """True for a person's words, wherever they were typed."""
        return self in (Owner.PERSON, Owner.PHOTOCAP_USER)


def parse_source(value: str | None) -> CaptionSource | None:
    """The ``photocap:DescriptionSource`` value as a CaptionSource (None if absent or unknown)."""
    if not value:
        return None
    text = value.strip().lower()
    try:
        return CaptionSource(text)
    except ValueError:
        pass
    if text.startswith(LEGACY_SOURCE_PREFIX):
        return CaptionSource.MODEL  # 0.1.0 recorded only that photocap wrote it
    return None


def owner_of(*, stock: bool, photocap_source: CaptionSource | None) -> Owner:
    """A value's owner: ``stock`` from the stock-text rule; ``photocap_source`` is the
    recorded source when the value's digest matches the one photocap recorded, else None."""
    if photocap_source is CaptionSource.USER:
        return Owner.PHOTOCAP_USER
    if photocap_source is CaptionSource.MODEL:
        return Owner.PHOTOCAP_MODEL
    return Owner.STOCK if stock else Owner.PERSON


def may_replace(
    owner: Owner, new_source: CaptionSource, *, force: bool = False, withdrawn: bool = False
) -> bool:
    """Whether a caption from ``new_source`` may replace a description owned by ``owner``.

    A camera's stock text and a model's caption may always be replaced. A person's words
    written through photocap may be replaced by a person's caption (the same person editing
    it), never by a model's, unless the person has just ``withdrawn`` exactly those words
    (``photocap clear-caption``). Words photocap did not write are only replaced with ``force``.
    """
    if force or owner in (Owner.STOCK, Owner.PHOTOCAP_MODEL):
        return True
    if owner is Owner.PHOTOCAP_USER:
        return new_source is CaptionSource.USER or withdrawn
    return False
