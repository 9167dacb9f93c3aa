"""Where files live: task inputs, uploads and outputs, with signed expiring URLs for outputs.

``open_storage`` picks the one for the settings: ``LocalStorage`` (folders in the data folder: one machine) or,
with INFINITETALK_STORAGE_URL=s3://bucket/prefix, ``S3Storage`` (one bucket shared by a fleet's processes).
"""

from __future__ import annotations

from infinitetalk.config import Settings
from infinitetalk.errors import StorageUnavailable
from infinitetalk.storage.base import OutputMirror, Storage
from infinitetalk.storage.local import LocalStorage

__all__ = ["LocalStorage", "OutputMirror", "Storage", "StorageUnavailable", "open_storage"]


def open_storage(settings: Settings) -> Storage:
    if not settings.storage_url:
        return LocalStorage(settings)
    from infinitetalk.storage.s3 import S3Storage, parse_url  # boto3 is imported only where it is used

    parse_url(settings.storage_url)  # a malformed URL is named before any connection is tried
    return S3Storage(settings)
