"""What a resume saves: a long job interrupted part-way and resumed, against running it again from frame 0.

Renders the job once uninterrupted, then again stopped after a share of its chunks (as a killed worker would
leave it: the checkpoint of the chunks finished so far) and resumed from that checkpoint. Prints the wall time
of each, and what the resume saved against a full rerun.

    python benchmarks/resume.py                          # 60 s of speech, preview engine, stopped at 50%
    python benchmarks/resume.py --seconds 300 --stop-at 0.9
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
from scipy.io import wavfile

from infinitetalk.engines import load_engine
from infinitetalk.engines.base import CancelToken
from infinitetalk.errors import Canceled
from infinitetalk.render.checkpoint import WorkFolder
from infinitetalk.render.render import ChunkProgress, render
from infinitetalk.schema import GenerationRequest

SPEECH = Path(__file__).resolve().parents[1] / "src" / "infinitetalk" / "demo" / "speech.mp3"


def speech(seconds: float, folder: Path) -> Path:
    """The bundled demo speech, said over and over for ``seconds``."""
    import av

    with av.open(str(SPEECH)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=22_050)
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                              for f in resampler.resample(frame)])
    path = folder / "speech.wav"
    wavfile.write(path, 22_050, np.resize(pcm, int(seconds * 22_050)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of speech (video)")
    parser.add_argument("--stop-at", type=float, default=0.5, help="share of the chunks done when it is stopped")
    parser.add_argument("--engine", default="preview")
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args()

    engine = load_engine(name=args.engine, weights_dir=args.weights)
    portrait = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        request = GenerationRequest.parse({"image": str(portrait), "audio": str(speech(args.seconds, folder)),
                                           "seed": 7})

        started = time.perf_counter()
        full = render(request, folder / "full.mp4", engine=engine)
        full_s = time.perf_counter() - started

        work, token = WorkFolder(folder / "work"), CancelToken()

        def stop_part_way(done: ChunkProgress) -> None:
            if done.chunks_done >= max(1, round(done.chunks * args.stop_at)):
                token.cancel()

        started = time.perf_counter()
        try:
            render(request, folder / "part.mp4", engine=engine, work=work, cancel=token, on_chunk=stop_part_way)
            sys.exit("the job ended before it could be stopped; give more --seconds")
        except Canceled:
            pass
        first_s = time.perf_counter() - started
        checkpoint = work.load()[0]
        kept, chunks = len(checkpoint.segments), checkpoint.chunks

        started = time.perf_counter()
        resumed = render(request, folder / "resumed.mp4", engine=engine, work=work)
        resumed_s = time.perf_counter() - started

    print(f"job: {args.seconds:g} s of video, {full.num_frames} frames, engine {engine.name}")
    print(f"uninterrupted run             {full_s:7.1f} s")
    print(f"run stopped after {kept:3d}/{chunks:<3d} chunks {first_s:7.1f} s")
    print(f"resumed run                   {resumed_s:7.1f} s (started after chunk {resumed.resumed_chunks})")
    print(f"saved against a full rerun    {full_s - resumed_s:7.1f} s ({(full_s - resumed_s) / full_s:.0%} of the "
          f"job's time)")


if __name__ == "__main__":
    main()
