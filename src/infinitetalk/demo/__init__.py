"""Inputs for `infinitetalk generate --demo`: speech made with espeak-ng, shipped as MP3."""
