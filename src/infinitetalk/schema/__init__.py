"""The canonical request and its limits."""

from infinitetalk.schema.request import AudioLayout, BBox, GenerationRequest, Mode, Resolution, Sampling

__all__ = ["AudioLayout", "BBox", "GenerationRequest", "Mode", "Resolution", "Sampling"]
