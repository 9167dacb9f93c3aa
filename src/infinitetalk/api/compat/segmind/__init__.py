"""Segmind (segmind.com) ``infinite-talk`` API."""

from infinitetalk.api.compat.segmind.router import router

__all__ = ["router"]
