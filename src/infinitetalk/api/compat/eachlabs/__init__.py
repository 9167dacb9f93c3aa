"""EachLabs (eachlabs.ai) InfiniteTalk predictions."""

from infinitetalk.api.compat.eachlabs.router import router

__all__ = ["router"]
