"""The preview engine: CPU, no downloads, faster than real time."""

from infinitetalk.engines.preview.engine import PreviewEngine

__all__ = ["PreviewEngine"]
