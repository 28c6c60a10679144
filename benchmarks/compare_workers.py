"""Compare-grid benchmark: `python -m benchmarks.compare_workers` (part of `make bench`).

The same compare (digits, every default loss, 2 seeds, the default epochs) run as
`python -m training.compare ... workers=1` and `... workers=2`, each on a new store in a
temporary folder, one after the other on the same machine:

1. wall-time ratio workers=2 / workers=1. Goal <= 0.70x on 2 cores.
2. the per-cell metrics are identical (every `test/` metric of every cell, exactly).
3. the cost per cell that is not training, from workers=1's run timestamps: the first cell's
   start-up (process start, imports, store, grid, claim: launch → its run's start), then the
   gap between one cell's run ending and the next one's starting (claim, Optuna tell, MLflow
   search, session clear), median and max over the cells after the first. Goal < 2 s. The
   MLflow calls inside a run (creating it, logging) are inside its training time here.

`--quick`: ce and focal, 1 seed, 1 epoch (a smoke run: the ratio means nothing there).
Run it alone on the machine: other load changes both the ratio and the gaps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
CELL_TAG = "losslab.cell"


def run_compare(folder: Path, words: list[str], workers: int) -> tuple[float, float]:
    """One compare on a new store under `folder` → (wall seconds, launch time as epoch s)."""
    folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "OPTUNA_STORAGE"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    launched = time.time()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "training.compare", *words, f"workers={workers}",
         f"checkpoint_dir={folder / 'ck'}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"workers={workers} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, launched


def cell_runs(folder: Path) -> list:
    """The store's FINISHED cell runs, by start time."""
    import mlflow  # noqa: PLC0415 (after the compares: this process stays light until then)

    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = [r for r in client.search_runs(experiments, max_results=5000)
            if CELL_TAG in r.data.tags and r.info.status == "FINISHED"]
    return sorted(runs, key=lambda r: r.info.start_time)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_workers",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ce, focal, 1 seed, 1 epoch")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the stores here")
    args = parser.parse_args(argv)
    words = (["dataset=digits", "losses=ce,focal", "seeds=1", "epochs=1"] if args.quick
             else ["dataset=digits", "seeds=2"])
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-compare-"))
    print(f"compare {' '.join(words)}; stores under {root}", flush=True)
    wall1, launched = run_compare(root / "workers1", words, 1)
    print(f"workers=1: {wall1:.1f} s", flush=True)
    wall2, _ = run_compare(root / "workers2", words, 2)
    print(f"workers=2: {wall2:.1f} s", flush=True)
    one, two = cell_runs(root / "workers1"), cell_runs(root / "workers2")

    def metrics(runs):
        return {r.data.tags[CELL_TAG]: {k: v for k, v in r.data.metrics.items()
                                        if k.startswith("test/")} for r in runs}

    same = metrics(one) == metrics(two) and len(one) == len(two) > 0
    first = one[0].info.start_time / 1000 - launched
    gaps = [(b.info.start_time - a.info.end_time) / 1000 for a, b in zip(one[:-1], one[1:], strict=True)]
    print(f"\ncells: {len(one)} (workers=1), {len(two)} (workers=2); per-cell test metrics "
          f"{'identical' if same else 'DIFFER'}")
    ratio = wall2 / wall1
    print(f"wall time workers=2 / workers=1: {ratio:.2f}x (goal <= 0.70x)")
    print(f"first cell's start-up (launch → its run): {first:.1f} s")
    if gaps:
        print(f"between cells (claim, tell, MLflow): median {statistics.median(gaps):.2f} s, "
              f"max {max(gaps):.2f} s over {len(gaps)} (goal < 2 s)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
