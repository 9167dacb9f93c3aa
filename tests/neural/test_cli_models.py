from __future__ import annotations

from typer.testing import CliRunner

from infinitetalk.cli.main import app


def test_verify_ok(tiny_weights) -> None:
    result = CliRunner().invoke(
        app, ["models", "verify", str(tiny_weights.root), "--variant", "single", "--variant", "multi"]
    )
    assert result.exit_code == 0, result.output
    assert "all 8 parts present" in result.output


def test_verify_lists_what_is_missing(tmp_path) -> None:
    result = CliRunner().invoke(app, ["models", "verify", str(tmp_path)])
    assert result.exit_code == 1
    assert "FAIL InfiniteTalk single adapter" in result.output
    assert "missing" in result.output


def test_download_rejects_unknown_variant(tmp_path) -> None:
    result = CliRunner().invoke(app, ["models", "download", str(tmp_path), "--variant", "triple"])
    assert result.exit_code != 0
