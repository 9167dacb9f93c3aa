"""GenerationRequest validation and output buckets."""

from __future__ import annotations

import pytest

from infinitetalk.errors import InvalidRequest
from infinitetalk.schema import GenerationRequest, Mode, Resolution
from infinitetalk.schema.buckets import buckets, output_size

BASE = {"image": "face.png", "audio": "speech.wav"}


def test_defaults() -> None:
    request = GenerationRequest.parse(BASE)
    assert request.mode is Mode.IMAGE_TO_VIDEO and request.resolution is Resolution.P480
    assert request.audio == ["speech.wav"] and request.fps == 25 and request.seed == -1
    assert 0 <= request.resolved_seed() <= 2_147_483_647
    assert GenerationRequest.parse({**BASE, "seed": 7}).resolved_seed() == 7


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"prompt": "   "}, "prompt", "blank"),
        ({"seed": -2}, "seed", "greater than or equal to -1"),
        ({"seed": 2_147_483_648}, "seed", "less than or equal"),
        ({"fps": 15}, "fps", "16"),
        ({"fps": 31}, "fps", "30"),
        ({"resolution": "1080p"}, "resolution", "480p"),
        ({"image": None}, None, "needs an image"),
        ({"mode": "video-to-video"}, None, "needs a video"),
        ({"audio": []}, "audio", "at least 1"),
        ({"audio": ["a.wav", "b.wav"], "mask": ["m.png"]}, None, "one mask per speaker"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_bad_requests_name_the_field(change: dict, field: str | None, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest.parse({**BASE, **change})
    assert info.value.field == field
    assert fragment in info.value.message
    assert info.value.code == "invalid_request" and info.value.http_status == 400


@pytest.mark.parametrize("resolution", list(Resolution))
def test_buckets_are_even_multiples_of_16_with_similar_area(resolution: Resolution) -> None:
    side = {"480p": 640, "576p": 768, "720p": 960}[resolution.value]
    for width, height in buckets(resolution):
        assert width % 16 == 0 and height % 16 == 0
        assert abs(width * height / side**2 - 1) < 0.2


@pytest.mark.parametrize(
    ("size", "resolution", "expected"),
    [
        ((512, 512), Resolution.P480, (640, 640)),
        ((1920, 1080), Resolution.P720, None),
        ((512, 600), Resolution.P480, None),
    ],
)
def test_closest_aspect_bucket(size: tuple[int, int], resolution: Resolution, expected: tuple | None) -> None:
    width, height = output_size(*size, resolution)
    if expected:
        assert (width, height) == expected
    assert abs(width / height - size[0] / size[1]) < 0.05
