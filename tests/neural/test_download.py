"""``infinitetalk models download`` end to end against a local server speaking the Hugging Face Hub's HTTP API.

The repositories hold the official file names (the Wan base's 7 shards, the wav2vec2 weights only in
``refs/pr/1``, the adapter in ``single/`` and ``multi/``) with tiny files; the real ``huggingface_hub`` client
is pointed at the server with ``HF_ENDPOINT``, in a subprocess, as a user runs the command.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hub_server import Hub, Server
from neural_factories import write_adapter, write_base, write_clip, write_t5, write_vae, write_wav2vec

from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.weights import WeightsLayout

BASE, WAV2VEC, ADAPTER = "Wan-AI/Wan2.1-I2V-14B-480P", "TencentGameMate/chinese-wav2vec2-base", "MeiGen-AI/InfiniteTalk"
#: The file the test interrupts: the largest of the run (the VAE), stopped after its first 12 MB.
STALLED = "Wan2.1_VAE.pth"


def _repos(root: Path) -> dict[str, dict[str, Path]]:
    """Tiny files under the official repositories' names, one folder per repository revision."""
    g = torch.Generator().manual_seed(0)
    layout = WeightsLayout(root / "layout")
    write_base(layout, TINY, g, shards=7)  # diffusion_pytorch_model-0000{1..7}-of-00007.safetensors
    for variant in ("single", "multi"):
        write_adapter(layout, TINY, g, variant)
    write_t5(layout, TINY, g)
    write_clip(layout, g)
    write_vae(layout, g, base_dim=16)  # ~15 MB: more than huggingface_hub's 10 MB write chunk, so a stop can resume
    write_wav2vec(layout, TINY)
    (layout.base_dir / "README.md").write_text("Wan2.1 I2V 14B 480P\n")
    (layout.base_dir / "diffusion_pytorch_model.safetensors.index.json").write_text("{}\n")
    wav_main = root / "wav2vec-main"  # the main branch has no model.safetensors: only the PR does
    shutil.copytree(layout.wav2vec, wav_main)
    (wav_main / "model.safetensors").unlink()
    (wav_main / "pytorch_model.bin").write_bytes(b"not used: the PR's safetensors file is the one fetched")
    adapter = root / "layout" / "InfiniteTalk"
    (adapter / "README.md").write_text("InfiniteTalk\n")
    return {BASE: {"main": layout.base_dir}, WAV2VEC: {"main": wav_main, "refs/pr/1": layout.wav2vec},
            ADAPTER: {"main": adapter}}


def _download(server: Server, target: Path, home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "30", "HF_HUB_DOWNLOAD_TIMEOUT": "30"}
    env.pop("HF_HUB_OFFLINE", None)
    cli = [sys.executable, "-c", "from infinitetalk.cli.main import app; app()"]
    return subprocess.Popen([*cli, "models", "download", str(target), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # ~10-20 s: three CLI processes (imports) and a tiny weights folder
def test_download_resumes_after_an_interruption_then_verifies_and_loads(tmp_path) -> None:
    hub = Hub()
    for repo, revisions in _repos(tmp_path / "hub").items():
        for name, folder in revisions.items():
            hub.add(repo, name, folder)
    vae = hub.find(BASE, "main").files()[STALLED]
    assert vae.stat().st_size > 12 * 2**20
    hub.stall[(BASE, STALLED)] = 12 * 2**20  # past the client's first 10 MB write
    target = tmp_path / "weights"

    with Server(hub) as server:
        first = _download(server, target, tmp_path / "hf")
        try:
            assert hub.stalled.wait(120), first.communicate(timeout=5)[0] if first.poll() is not None else "no stall"
            time.sleep(0.5)  # the client writes what it has received
            # a dropped connection or a killed process mid-download (Ctrl-C does not stop huggingface_hub's
            # download threads while a read is stalled: it hangs until the read times out)
            first.kill()
            first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate(timeout=30)
            hub.release.set()
        assert first.returncode == -signal.SIGKILL
        assert not (target / "Wan2.1-I2V-14B-480P" / STALLED).exists()  # never a partial file under its name

        second = _download(server, target, tmp_path / "hf")
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 0, out

    vae_gets = [r for repo, name, r in hub.gets if (repo, name) == (BASE, STALLED)]
    assert vae_gets[0] is None and vae_gets[-1] is not None  # the rerun asked only for the rest ...
    assert int(vae_gets[-1].removeprefix("bytes=").split("-")[0]) > 0
    assert (target / "Wan2.1-I2V-14B-480P" / STALLED).read_bytes() == vae.read_bytes()  # ... and it is whole
    # the wav2vec2 weights come from refs/pr/1 (main has none), the adapter from single/ only
    assert (target / "chinese-wav2vec2-base" / "model.safetensors").is_file()
    assert (target / "InfiniteTalk" / "single" / "infinitetalk.safetensors").is_file()
    assert not (target / "InfiniteTalk" / "multi").exists()
    names = sorted(p.name for p in (target / "Wan2.1-I2V-14B-480P").glob("diffusion_pytorch_model-*"))
    assert names == [f"diffusion_pytorch_model-0000{i}-of-00007.safetensors" for i in range(1, 8)]

    from typer.testing import CliRunner

    from infinitetalk.cli.main import app

    verified = CliRunner().invoke(app, ["models", "verify", str(target)])
    assert verified.exit_code == 0, verified.output

    from infinitetalk.engines.neural.engine import NeuralEngine

    engine = NeuralEngine.from_pretrained(target, device="cpu")
    assert engine.pipeline.transformer.model_cfg == TINY


def test_a_dropped_connection_resumes_in_the_same_run_and_a_corrupt_file_is_refused(tmp_path) -> None:
    from infinitetalk.engines.neural.download import fetch_repo
    from infinitetalk.errors import EngineError

    folder = tmp_path / "repo"
    (folder / "single").mkdir(parents=True)
    payload = os.urandom(3 * 2**20)
    (folder / "single" / "infinitetalk.safetensors").write_bytes(payload)
    (folder / "README.md").write_text("adapter\n")
    hub = Hub()
    hub.add(ADAPTER, "main", folder)
    hub.drop[(ADAPTER, "single/infinitetalk.safetensors")] = 2**20 + 5
    with Server(hub) as server:
        fetch_repo(ADAPTER, tmp_path / "out", patterns=["single/*"], say=lambda _: None, endpoint=server.url)
        ranges = [r for _, name, r in hub.gets if name == "single/infinitetalk.safetensors"]
        assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
        assert (tmp_path / "out" / "single" / "infinitetalk.safetensors").read_bytes() == payload
        assert not (tmp_path / "out" / "README.md").exists()  # only what the patterns ask for

        # bytes that differ from the listing's SHA-256 (a bad proxy, a broken disk): refused, nothing in place
        hub.listed_sha256[(ADAPTER, "single/infinitetalk.safetensors")] = "0" * 64
        with pytest.raises(EngineError, match="SHA-256"):
            fetch_repo(ADAPTER, tmp_path / "again", patterns=["single/*"], say=lambda _: None, endpoint=server.url)
    assert not (tmp_path / "again" / "single" / "infinitetalk.safetensors").exists()
