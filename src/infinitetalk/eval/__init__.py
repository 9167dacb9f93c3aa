"""Measures of a generated video: lip sync against the speech, and a contact sheet to judge the look."""

from infinitetalk.eval.sheet import contact_sheet
from infinitetalk.eval.sync import SyncScore, audio_envelope, mouth_aperture, mouth_box_darkness, sync_score

__all__ = ["SyncScore", "audio_envelope", "contact_sheet", "mouth_aperture", "mouth_box_darkness", "sync_score"]
