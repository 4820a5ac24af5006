"""NAB's rules on long streams: a generated corpus the development files cannot stand in for.

NAB's development files hold at most 4,032 points, shorter than the detector's memory, so
they cannot show what happens over a long stream (NAB's other real files run to 22,000
points; a production stream never ends). This writes, from a fixed seed, 24 files of
15,000 points at 5-minute steps in NAB's layout (daily-cycle Poisson counts, an AR(1) gauge
with a daily cycle, heavy-tailed spiky counts), each with three anomalies of 8, 5 and 3.5
standard deviations in random order, one in each third of the scored part (a 3-point burst,
a 150-point level shift that goes back, or a 60-point flatline), with NAB's window rule (10%
of the file split over its anomalies, centred on each). Then it scores the ensemble with the
given parameters. A check made here, not a benchmark anyone published: it was not used to
choose any constant.

    .venv/bin/python bench/nab_long.py --scorer ../shared/tools/nab_score.py \
        [--set calibration_alpha=0.0002 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from controlplane.detection.offline import DetectJob, nab_jobs, run_jobs

sys.path.insert(0, str(Path(__file__).parent))
from _options import parameter
from nab_loco import PROFILES, load_scorer, score

POINTS, DAY, FILES = 15_000, 288, 24
START = pd.Timestamp("2026-01-01")


def stamp(i: int) -> str:
    return str(START + pd.Timedelta(minutes=5 * i))


def series(kind: int, rng: np.random.Generator) -> np.ndarray:
    cycle = np.sin(2 * np.pi * np.arange(POINTS) / DAY)
    if kind == 0:  # counts with a daily cycle
        return rng.poisson(20 + 15 * cycle).astype(float)
    if kind == 1:  # an AR(1) gauge with a daily cycle
        noise = np.zeros(POINTS)
        for i in range(1, POINTS):
            noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 1)
        return 50 + 10 * cycle + noise
    return 5 + 3 * cycle + rng.standard_t(2.5, POINTS).clip(-5, 60)  # heavy-tailed, spiky


def generate(root: Path, seed: int = 2026) -> None:
    """The corpus in NAB's layout: data/long/*.csv and labels/combined_windows.json."""
    rng = np.random.default_rng(seed)
    (root / "data" / "long").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    windows: dict[str, list[list[str]]] = {}
    first, third = int(0.2 * POINTS), (POINTS - 300 - int(0.2 * POINTS)) // 3
    width = int(0.1 * POINTS / 3)
    for number in range(FILES):
        x = series(number % 3, rng)
        scale = float(np.std(x))
        starts = [first + k * third + int(rng.integers(900, third - 900)) for k in range(3)]
        spans = []
        for at, size in zip(starts, rng.permutation([8.0, 5.0, 3.5]), strict=True):
            shape = rng.integers(0, 3)
            if shape == 0:
                x[at : at + 3] += size * scale
            elif shape == 1:
                x[at : at + 150] += size * scale / 2
            else:
                x[at : at + 60] = np.median(x) + rng.normal(0, 0.1 * scale, 60)
            low, high = max(0, at - width // 2), min(POINTS - 1, at + width // 2)
            spans.append([stamp(low), stamp(high)])
        name = f"long/stream_{number:02d}.csv"
        frame = pd.DataFrame({"timestamp": [stamp(i) for i in range(POINTS)], "value": x})
        frame.round(4).to_csv(root / "data" / name, index=False)
        windows[name] = spans
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", type=Path, required=True, help="nab_score.py")
    parser.add_argument("--output", type=Path, default=Path("out/nab-long"))
    parser.add_argument("--set", type=parameter, action="append", default=[], help="k=v")
    args = parser.parse_args()
    corpus = args.output / "corpus"
    if not (corpus / "labels" / "combined_windows.json").is_file():
        generate(corpus)
    results = args.output / "results"
    jobs = [
        DetectJob(job.source, job.target, job.detector, tuple(args.set))
        for job in nab_jobs(corpus, results, "ensemble")
    ]
    run_jobs(jobs)
    scored = score(load_scorer(args.scorer), corpus, results, ["long"])
    chosen = " ".join(f"{k}={v}" for k, v in args.set) or "defaults"
    print(f"ensemble ({chosen}) on {FILES} files of {POINTS:,} points:")
    for profile in PROFILES:
        answer = scored[profile]
        print(f"  {profile:21s} {answer['score']:6.2f}  (threshold {answer['threshold']:.3f})")


if __name__ == "__main__":
    main()
