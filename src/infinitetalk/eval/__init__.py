"""Measures of a generated video: lip sync against the speech, blinks, the mouth in silence, and a
contact sheet to judge the look."""

from infinitetalk.eval.behaviour import Blinks, SilentMouth, face_behaviour
from infinitetalk.eval.sheet import contact_sheet
from infinitetalk.eval.sync import (
    SyncScore,
    audio_envelope,
    mouth_aperture,
    mouth_box_darkness,
    sync_score,
)

__all__ = [
    "Blinks", "SilentMouth", "SyncScore", "audio_envelope", "contact_sheet", "face_behaviour", "mouth_aperture",
    "mouth_box_darkness", "sync_score",
]
