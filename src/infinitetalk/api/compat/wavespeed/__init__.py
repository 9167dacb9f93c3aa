"""WaveSpeed (wavespeed.ai) InfiniteTalk APIs: image-to-video, video-to-video, multi."""

from infinitetalk.api.compat.wavespeed.router import router

__all__ = ["router"]
