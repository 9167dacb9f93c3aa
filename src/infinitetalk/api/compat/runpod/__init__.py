"""RunPod (runpod.io) public endpoint ``infinitetalk``."""

from infinitetalk.api.compat.runpod.router import router

__all__ = ["router"]
