"""A "mostly still street" made from a real clip, for the benchmarks' realistic camera mixes.

Most city cameras watch scenes where nothing moves most of the time; the shared street clips were
picked for their activity and have no such stretch. :func:`still_street` makes one from a real clip:
its empty street (the per-pixel median of frames spread over the whole clip: what passes is gone,
what stands — parked cars, stalls — stays) with fresh sensor noise on every frame, and every
``period_seconds`` the real clip itself for ``active_seconds`` (people and vehicles passing, taken
in order from where the last pass ended). It is encoded like an IP camera's main stream: H.264,
no B-frames, a key frame every 2 s, at the clip's size and frame rate.

    python benchmarks/still_street.py ../shared/videos/intersection.mp4 /tmp/still.mp4
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BACKGROUND_SAMPLES = 31  # frames spread over the clip whose median is the empty street
NOISE_SIGMA = 2.0  # grey levels of sensor noise added to each still frame
ACTIVE_SECONDS = 3.0  # of each period, the real clip plays (passers-by)
PERIOD_SECONDS = 20.0


def _decoded(clip: Path):
    """The clip's frames (BGR), decoded one at a time."""
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="bgr24")


def _looping(clip: Path):
    """The clip's frames in order, from the start again at its end."""
    while True:
        yield from _decoded(clip)


def still_street(
    clip: Path,
    out: Path,
    seconds: float = 60.0,
    active_seconds: float = ACTIVE_SECONDS,
    period_seconds: float = PERIOD_SECONDS,
    seed: int = 0,
) -> Path:
    """Write ``seconds`` of the mostly still version of ``clip`` to ``out`` (kept if it exists)."""
    if out.exists():
        return out
    with av.open(str(clip)) as container:
        rate = container.streams.video[0].average_rate or Fraction(25)
    count = sum(1 for _ in _decoded(clip))
    picks = set(np.linspace(0, count - 1, min(BACKGROUND_SAMPLES, count)).round().astype(int).tolist())
    samples = [image for index, image in enumerate(_decoded(clip)) if index in picks]
    background = np.median(np.stack(samples), axis=0).astype(np.float32)
    height, width = samples[0].shape[:2]
    real = _looping(clip)
    random = np.random.default_rng(seed)
    fps = float(rate)
    active, period = round(active_seconds * fps), round(period_seconds * fps)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "bf": "0", "g": str(round(2 * fps))}
        for index in range(round(seconds * fps)):
            if index % period < active:
                image = next(real)
            else:
                noise = random.normal(0.0, NOISE_SIGMA, background.shape).astype(np.float32)
                image = np.clip(background + noise, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(out)
    return out


def cached_still_street(clip: Path, seconds: float) -> Path:
    """:func:`still_street` of ``clip`` at the defaults, made once into the temporary folder."""
    out = Path(tempfile.gettempdir()) / "retina-still-streets" / f"{clip.stem}-still-{seconds:g}s.mp4"
    return still_street(clip, out, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--active-seconds", type=float, default=ACTIVE_SECONDS)
    parser.add_argument("--period-seconds", type=float, default=PERIOD_SECONDS)
    args = parser.parse_args()
    path = still_street(args.clip, args.out, args.seconds, args.active_seconds, args.period_seconds)
    print(path)


if __name__ == "__main__":
    main()
