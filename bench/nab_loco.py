"""The NAB score twice: in-sample (the development score) and leave-one-category-out.

Every constant of the default ensemble that was chosen by looking at NAB scores is chosen
again here, and so is the alarm threshold (which the scorer otherwise sweeps with the labels
in view): the scale floor (`floor`), what it is a fraction of (`floor_basis`) and the
seasonal phase jitter (`jitter`), over the grid below, which holds the values tried when
they were first chosen. For each of the five
categories, the configuration and threshold with the best raw score on the other four are
applied, unchanged, to the category left out. The held-out raw scores are summed and
normalised like one corpus (NAB's `100 (raw - null) / (perfect - null)`), which is the
leave-one-category-out score; the gap to the development score estimates how much the
choice was fitted to the files it was chosen on. Labels are read by the scorer only.

    .venv/bin/python bench/nab_loco.py --data ../shared/datasets/nab \
        --scorer ../shared/tools/nab_score.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import itertools
import json
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.progress import Progress

import detectors
from controlplane.detection.offline import DetectJob, nab_jobs, run_jobs

#: The values tried when the constants were first chosen (docs/benchmarks.md).
GRID: dict[str, tuple[Any, ...]] = {
    "floor": (0.01, 0.02, 0.05, 0.10, 0.20, 0.50),
    "jitter": (0.0, 0.01, 0.02, 0.03),
    # What the floor is a fraction of: one that an offset does not change (derived, see
    # detectors/ensemble.py), but which of those two was chosen by score, so again here.
    "floor_basis": ("above_low", "range"),
}
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
Config = tuple[tuple[str, Any], ...]


def configs() -> list[Config]:
    names = list(GRID)
    return [tuple(zip(names, values, strict=True)) for values in itertools.product(*GRID.values())]


def label(config: Config) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in config)


def load_scorer(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("nab_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--scorer: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def detect(data: Path, out: Path, config: Config) -> Path:
    jobs = [
        DetectJob(job.source, job.target, job.detector, config)
        for job in nab_jobs(data, out, "ensemble")
    ]
    run_jobs(jobs)
    return out


def score(
    scorer: ModuleType,
    data: Path,
    results: Path,
    categories: list[str],
    threshold: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """The scorer's answer per profile (raw, null, perfect, threshold) on `categories`."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        argv = ["--data", str(data), "--results", str(results)]
        argv += ["--categories", ",".join(categories), "--json", str(report)]
        if threshold is not None:
            argv += ["--threshold", ",".join(f"{p}={t!r}" for p, t in threshold.items())]
        with contextlib.redirect_stdout(io.StringIO()):  # its table; the JSON is what counts
            scorer.main(argv)
        (answer,) = json.loads(report.read_text())
    profiles: dict[str, dict[str, Any]] = answer["profiles"]
    return profiles


def normalised(raw: float, null: float, perfect: float) -> float:
    return 100.0 * (raw - null) / (perfect - null)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--scorer", type=Path, required=True, help="nab_score.py")
    parser.add_argument("--output", type=Path, default=Path("out/nab-loco"))
    args = parser.parse_args()
    scorer = load_scorer(args.scorer)
    categories = sorted(p.name for p in (args.data / "data").iterdir() if p.is_dir())
    grid = configs()

    results: dict[Config, Path] = {}
    with Progress() as progress:
        task = progress.add_task(f"ensemble over {len(grid)} configurations", total=len(grid))
        for config in grid:
            folder = args.output / label(config).replace(" ", "_").replace("=", "-")
            results[config] = detect(args.data, folder, config)
            progress.advance(task)

    print(f"grid: {', '.join(f'{k} in {v}' for k, v in GRID.items())} ({len(grid)} configs)")
    development = {config: score(scorer, args.data, results[config], categories) for config in grid}
    held: dict[str, dict[str, float]] = {
        p: {"raw": 0.0, "null": 0.0, "perfect": 0.0} for p in PROFILES
    }
    print(f"\n{'left out':23s}{'profile':21s}{'chosen on the other four':50s}thr    raw")
    for left_out in categories:
        others = [c for c in categories if c != left_out]
        on_others = {c: score(scorer, args.data, results[c], others) for c in grid}
        for profile in PROFILES:
            chosen = max(grid, key=lambda c: on_others[c][profile]["raw"])  # ties: grid order
            threshold = on_others[chosen][profile]["threshold"]
            applied = score(scorer, args.data, results[chosen], [left_out], {profile: threshold})[
                profile
            ]
            for key in ("raw", "null", "perfect"):
                held[profile][key] += applied[key]
            print(
                f"{left_out:23s}{profile:21s}{label(chosen):50s}{threshold:<7.4g}"
                f"{applied['raw']:7.2f}"
            )

    shipped_params = detectors.make("ensemble").get_params()
    default = tuple((name, shipped_params[name]) for name in GRID)
    print(
        "\nprofile              development (default)  development (best on all)  "
        "leave-one-category-out  gap"
    )
    for profile in PROFILES:
        shipped = development[default][profile]["score"]
        best = max(grid, key=lambda c: development[c][profile]["raw"])
        best_score = development[best][profile]["score"]
        loco = normalised(**held[profile])
        print(
            f"{profile:21s}{shipped:8.2f}               {best_score:8.2f} ({label(best)})"
            f"   {loco:8.2f}              {shipped - loco:5.2f}"
        )


if __name__ == "__main__":
    main()
