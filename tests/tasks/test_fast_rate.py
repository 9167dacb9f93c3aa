"""The fast sampling mode's price: its own rate per resolution, half the resolution's rate unless set."""

from __future__ import annotations

import pytest

from infinitetalk.config import Settings
from infinitetalk.tasks import billing


@pytest.mark.parametrize(("resolution", "price"), [("480p", 0.075), ("576p", 0.1125), ("720p", 0.15)])
def test_fast_rate_defaults_to_half_the_resolution_rate(resolution: str, price: float) -> None:
    quote = billing.quote(audio_seconds=4.2, resolution=resolution, settings=Settings(), fast=True)
    assert quote.billed_seconds == 5
    assert quote.price == pytest.approx(price)
    full = billing.quote(audio_seconds=4.2, resolution=resolution, settings=Settings())
    assert quote.price_micros * 2 == full.price_micros


def test_fast_rates_are_configurable_per_resolution() -> None:
    settings = Settings(fast_rates={"720p": 0.04}, min_billed_seconds=1)
    assert billing.quote(audio_seconds=2, resolution="720p", settings=settings, fast=True).price == pytest.approx(0.08)
    # a resolution the setting leaves out keeps the default: half its rate
    assert billing.quote(audio_seconds=2, resolution="480p", settings=settings, fast=True).price == pytest.approx(0.03)


def test_fast_rates_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITETALK_FAST_RATES", '{"480p": 0.01}')
    assert Settings().fast_rates == {"480p": 0.01}


def test_the_models_list_shows_both_rates() -> None:
    from infinitetalk.tasks.catalog import catalog

    settings = Settings(fast_rates={"720p": 0.04})
    models = catalog(settings, engine="preview", key=None).data
    rates = {r.resolution.value: (r.usd_per_second, r.usd_per_second_fast) for r in models[0].resolutions}
    assert rates == {"480p": (0.03, 0.015), "576p": (0.045, 0.0225), "720p": (0.06, 0.04)}
    assert all("sampling" in model.inputs for model in models)
