"""Media: fetch inputs safely, decode audio/images/video, encode the MP4."""
