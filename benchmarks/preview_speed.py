"""Preview engine speed: CPU and wall seconds per second of video, and peak memory, through render().

Runs each case in a fresh process, so peak memory (max RSS) belongs to that case alone and
the first run pays mediapipe's start-up like a user's `infinitetalk generate` does. CPU time
is the process's user + system time over render() (every thread: the encoder's too): on a
shared, loaded machine it is the figure to compare, as wall time depends on the neighbours.

    .venv/bin/python benchmarks/preview_speed.py [--seconds 20] [--repeat 3]

Targets on the 2-core machine (issue 24): at 480p <= 0.25 s per second of video both in CPU
time and in wall time (wall on a quiet machine), < 1.5 GB peak; video-to-video and two speakers
<= 0.4 s per second of video.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "480p image": {"resolution": "480p"},
    "720p image": {"resolution": "720p"},
    "480p video-to-video": {"resolution": "480p", "mode": "video-to-video"},
    "480p two speakers": {"resolution": "480p", "speakers": 2},
}


def make_inputs(folder: Path, seconds: float) -> dict[str, str]:
    """Speech of about ``seconds`` from espeak-ng, a two-person picture and a source video."""
    import numpy as np
    from PIL import Image

    from infinitetalk.cli.generate import demo_inputs

    portrait, _ = demo_inputs()
    words = ("The quick brown fox jumps over the lazy dog while seven ships sail north. " * 20).split()
    text = " ".join(words[: int(seconds * 2.6)])
    for name, voice in (("a.wav", "en-us"), ("b.wav", "en-gb")):
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(folder / name), text], check=True)
    import skimage.data

    left = Image.open(portrait).resize((384, 450))
    right = Image.fromarray(skimage.data.astronaut()).resize((450, 450))
    pair = Image.new("RGB", (840, 450))
    pair.paste(left, (0, 0))
    pair.paste(right, (390, 0))
    pair.save(folder / "pair.png")
    # a source video: the portrait drifting slowly, at 30 fps
    from infinitetalk.media.video import Mp4Writer

    still = np.asarray(Image.open(portrait).convert("RGB").resize((512, 600)))
    with Mp4Writer(folder / "source.mp4", width=480, height=560, fps=30) as writer:
        for i in range(int(seconds * 30)):
            dx = int(8 * np.sin(i / 40))
            writer.write(np.ascontiguousarray(still[20 + dx // 2 : 580 + dx // 2, 16 + dx : 496 + dx]))
    return {"portrait": str(portrait), "a": str(folder / "a.wav"), "b": str(folder / "b.wav"),
            "pair": str(folder / "pair.png"), "video": str(folder / "source.mp4")}


def run_case(case: dict, inputs: dict[str, str], out: str) -> dict:
    from infinitetalk.engines.preview import PreviewEngine
    from infinitetalk.render.render import render
    from infinitetalk.schema import GenerationRequest

    fields: dict = {"resolution": case["resolution"], "seed": 1, "audio": [inputs["a"]]}
    if case.get("mode") == "video-to-video":
        fields.update(mode="video-to-video", video=inputs["video"])
    elif case.get("speakers") == 2:
        fields.update(image=inputs["pair"], audio=[inputs["a"], inputs["b"]])
    else:
        fields.update(image=inputs["portrait"])
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = render(GenerationRequest.parse(fields), out, engine=PreviewEngine())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"size": f"{result.width}x{result.height}", "video_s": result.duration_s, "wall_s": wall,
            "s_per_video_s": wall / result.duration_s, "cpu_per_video_s": cpu / result.duration_s,
            "peak_mb": after.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the test speech")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (the median is shown)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_case(CASES[args.case], json.loads(args.inputs), f"{tmp}/out.mp4")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp), args.seconds)
        print(f"{'case':<22} {'size':>10} {'video s':>8} {'wall s':>7} {'wall s/s':>9} {'CPU s/s':>8} {'peak MB':>8}")
        for name in CASES:
            runs = []
            for _ in range(args.repeat):
                done = subprocess.run([sys.executable, __file__, "--case", name, "--inputs", json.dumps(inputs)],
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    break
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            if not runs:
                print(f"{name:<22} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            r = sorted(runs, key=lambda run: run["cpu_per_video_s"])[len(runs) // 2]
            print(f"{name:<22} {r['size']:>10} {r['video_s']:>8.1f} {r['wall_s']:>7.2f} {r['s_per_video_s']:>9.3f}"
                  f" {r['cpu_per_video_s']:>8.3f} {r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
