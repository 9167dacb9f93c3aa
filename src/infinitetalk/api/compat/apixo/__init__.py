"""APIXO (apixo.ai) InfiniteTalk API."""

from infinitetalk.api.compat.apixo.router import router

__all__ = ["router"]
