"""At submit: is there a face for every speaker? A render that cannot find them fails, so it is refused here, as
a 400 before anything is stored or charged (hosted providers do not bill a request they refuse).

The check sees what the render sees: the picture prepared as the engine gets it (the portrait, or the video's
first frame, cover-cropped to its bucket, masks and boxes moved with it) and the preview engine's own rule for
which face is whose (``engines.preview.faces.speaker_faces``). Both engines get it: the neural pipeline animates
the face region too, and with no face there its output is noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infinitetalk.engines.base import Speaker
from infinitetalk.engines.preview.faces import speaker_faces
from infinitetalk.render.inputs import prepare_picture
from infinitetalk.schema import GenerationRequest

_NO_SPEECH = np.zeros(0, np.float32)  # the check needs the speakers' masks and boxes, not their audio


def _staged_file(ref: str, **_where: str) -> Path:
    return Path(ref)


def check_speaker_faces(staged: GenerationRequest) -> None:
    """Raise NoFaceDetected (or the mask/box error the render would give) unless each speaker of ``staged``
    (a request whose inputs are files already fetched and decode-checked) has a face to animate."""
    picture = prepare_picture(staged, _staged_file)
    speakers = [Speaker(audio=_NO_SPEECH, mask=mask, bbox=box) for mask, box in zip(picture.masks, picture.boxes,
                                                                                   strict=True)]
    speaker_faces(picture.image, speakers)
