"""Rendering one request end to end: its inputs, its chunks, their checkpoints and segments, the MP4."""
