"""WaveSpeed (wavespeed.ai) InfiniteTalk APIs: image-to-video, video-to-video, multi, and their fast family."""

from infinitetalk.api.compat.wavespeed.router import router

__all__ = ["router"]
