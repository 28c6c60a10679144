"""Semi-hard mining memory benchmark: `python -m benchmarks.mining` (part of `make bench`).

`losses.TripletLoss(margin=0.2, mining="semi-hard")`, forward + backward (gradient with
respect to the embeddings), TensorFlow backend, on a P×K batch (8 per class), D = 64:

- eager: the loss and `tf.GradientTape` called directly, as in a custom training loop
  or a debugging session. The tape keeps every intermediate that a gradient needs, so
  this is the mode where (B, B) temporaries add up (B = 4096: 64 MB per float32 array).
- tf.function: the same step traced once (as `fit` runs it).
- floor: eager again with `mining.semi_hard_hinge` (mining and hinge terms, one op)
  replaced by a masked row sum of d: what the distances (losses/distances.py) cost with
  mining and hinge for free. Ours minus floor is their share. (Before the hinge moved into
  the mining op, the floor also held the hinge's (B, B) autodiff terms: 1067 MiB at
  B = 4096, of which ~580 MiB were the distances' tape.)

Each case runs in a fresh subprocess: one small call (B = 64) starts the TensorFlow runtime,
then the RSS high-water mark is reset (/proc/self/clear_refs; without it, the growth of
ru_maxrss is reported) and the full-size calls run; peak = VmHWM − VmRSS before them, so it
includes the first call's allocations (TensorFlow's allocator keeps freed memory, a second
call alone would show ~0). Time = median over the calls (default 3). The load average is
printed before and after each row: on a shared machine compare rows of one run.
Goal (issue on semi-hard memory): eager fwd+bwd at B = 4096 under 1 GiB (measured: ~400 MiB,
was ~1170 MiB). About 2 minutes on 2 cores (the eager semi-hard call takes ~7 s at
B = 4096, nearly all of it the forward sort and binary search). Options: --help, e.g.
`--sizes 4096 --cases eager --calls 1` for one row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SIZES = [1024, 4096]
DIM = 64
CASES = ("eager", "tf.function", "floor")


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_case(case: str, batch: int, calls: int) -> dict:
    """One case in this process: per-call seconds, peak MB, loss value."""
    import numpy as np
    import tensorflow as tf
    from keras import ops

    import losses
    from losses import mining

    if case == "floor":
        mining.semi_hard_hinge = lambda d, positive, negative, margin, soft: (
            ops.sum(ops.where(positive, d, 0.0), axis=1),
            ops.sum(ops.cast(positive, "int32"), axis=1),
            positive,
        )
    loss = losses.TripletLoss(margin=0.2, mining="semi-hard")
    rng = np.random.default_rng(0)

    def data(b):
        labels = tf.constant(np.repeat(np.arange(b // 8), 8).astype("int32"))
        return labels, tf.constant(rng.normal(size=(b, DIM)).astype("float32"))

    def step(labels, emb):
        with tf.GradientTape() as tape:
            tape.watch(emb)
            value = loss(labels, emb)
        return value, tape.gradient(value, emb)

    if case == "tf.function":
        step = tf.function(step)
    float(step(*data(64))[0])  # start the runtime (and trace once) outside the measurement
    labels, emb = data(batch)
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM := VmRSS
        before, source = _status_mb("VmRSS"), "VmHWM"
    except OSError:
        before, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss"
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        value, gradient = step(labels, emb)
        gradient.numpy()
        times.append(time.perf_counter() - start)
    after = _status_mb("VmHWM") if source == "VmHWM" else None
    if after is None:
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times, "peak_mb": after - before, "memory": source, "value": float(value)}


def case_in_subprocess(case: str, batch: int, calls: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.mining", "--case", case, str(batch), str(calls)],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--calls", type=int, default=3, help="timed calls per case")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--case", nargs=3, metavar=("CASE", "B", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # child process: one case, JSON on stdout
        print(json.dumps(run_case(args.case[0], int(args.case[1]), int(args.case[2]))))
        return

    started = time.perf_counter()
    print(f"{len(os.sched_getaffinity(0))} CPUs; load average (1 min/5 min) {load()} at start.\n")
    print(f"## Semi-hard TripletLoss forward + backward, D={DIM}, P×K batches (K = 8), TensorFlow\n")
    print("| B | mode | median s per call | calls | peak RSS growth MiB | loss | load before → after |")
    print("|---|---|---|---|---|---|---|")
    source = "VmHWM"
    for batch in [int(s) for s in args.sizes.split(",")]:
        for case in args.cases.split(","):
            before = load()
            got = case_in_subprocess(case, batch, args.calls)
            if "error" in got:
                print(f"| {batch} | {case} | {got['error']} | | | | {before} → {load()} |")
                continue
            source = got["memory"]
            print(
                f"| {batch} | {case} | {statistics.median(got['times']):.2f} | {args.calls} "
                f"| {got['peak_mb']:.0f} | {got['value']:.6f} | {before} → {load()} |",
                flush=True,
            )
    print(
        f"\nPeak: growth of the RSS high-water mark over the full-size calls ({source}). "
        f"floor = semi_hard_hinge replaced by a masked row sum (what the distances cost). "
        f"Load average {load()} at the end; total {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
