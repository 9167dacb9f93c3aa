"""Self-hosted InfiniteTalk: a portrait (or video) plus speech in, a lip-synced talking video out."""

__version__ = "0.1.0"
