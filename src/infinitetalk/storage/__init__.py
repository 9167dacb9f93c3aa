"""Where files live: task inputs, uploads and outputs, with signed expiring URLs for outputs."""

from infinitetalk.storage.local import LocalStorage

__all__ = ["LocalStorage"]
