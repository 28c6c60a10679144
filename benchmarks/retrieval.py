"""Retrieval evaluation benchmark: `python -m benchmarks.retrieval` (part of `make bench`).

`training.metrics.retrieval_metrics` (exact leave-one-out precision@1, recall@5,
R-precision, MAP@R) against scikit-learn's brute-force search,
`NearestNeighbors(algorithm="brute").kneighbors` with k = the largest R (+1: the query
finds itself), on the same embeddings: D = 64, C balanced classes, each item a unit-
normalised gaussian around its class centre (noise 1.5, as in benchmarks/train.py: P@1
≈ 0.88 with 100 classes, 0.99 with 10). N = 16,000 and 70,000 (MNIST-sized), C = 10 (R ≈
N/10, the hard case: k = 6,999 at 70k) and 100. scikit-learn only finds the neighbours;
ours also scores them.

Each measurement runs in a fresh subprocess that reports wall and CPU seconds of the call
and its peak memory: the growth of the RSS high-water mark over the call (VmHWM, reset
just before it through /proc/self/clear_refs; without that, the growth of ru_maxrss).
kneighbors would return all neighbour lists at once, 70k × 7,000 int64 indices plus
float64 distances = 7.8 GB, so it is called on blocks of 4,096 queries and the results
are dropped (it chunks its own work inside, as ours does). Repeats alternate ours and
scikit-learn so that load from other processes hits both alike; the tables give medians,
ratio = ours / scikit-learn of the medians, and the load average before and after each
row. Also, at 16k: the same scores computed with TensorFlow (`tf.matmul` + `tf.math.top_k`
per block, ties to the lower index like ours), to show which backend wins.

Goals (issue 12): ours <= 0.35× scikit-learn at 16k and 70k; 70k under 60 s on 2 cores;
peak <= 1 GB. Measured (2 cores, `--repeats 5 --repeats-large 3`): 16k 0.33× (100 classes)
and 0.17× (10); 70k 0.23× in 5.6 s (100) and 0.08× in 11.3 s, peak 305 MB (10). The
default run takes ~6 minutes on 2 idle cores, most of it scikit-learn at 70k with 10
classes (--quick: 16k only, ~1 minute). Options: --help.
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

DIM = 64
NOISE = 1.5
SIZES = [16_000, 70_000]
CLASSES = [10, 100]
SK_BLOCK = 4096  # queries per kneighbors call
TF_MAX_N = 16_000  # the TensorFlow variant takes minutes beyond this


def embeddings(n: int, classes: int, seed: int = 0):
    """(x float32 (n, DIM) unit rows, labels (n,)): n // classes items per class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, DIM)).astype(np.float32)
    labels = rng.permutation(np.repeat(np.arange(classes), n // classes))
    x = centres[labels] + rng.normal(scale=NOISE, size=(len(labels), DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def ours(x, labels):
    from training.metrics import retrieval_metrics

    return retrieval_metrics(x, labels)


def sklearn_brute(x, labels):
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    r_max = int(np.bincount(labels).max()) - 1
    index = NearestNeighbors(algorithm="brute").fit(x)
    for start in range(0, len(x), SK_BLOCK):
        index.kneighbors(x[start : start + SK_BLOCK], n_neighbors=r_max + 1)
    return None


def tf_top_k(x, labels, k=5, chunk=1024):
    """The same scores with TensorFlow: per block of queries one matmul of augmented
    vectors (as ours) and tf.math.top_k of the negated bracket (ties: lower index
    first), then rel(i) and the four scores."""
    import numpy as np
    import tensorflow as tf

    counts = np.bincount(labels)
    r_all = counts[labels] - 1
    m = int(min(len(x) - 1, max(r_all.max(), k)))
    items = tf.constant(np.concatenate([x, (x * x).sum(1, keepdims=True)], axis=1))
    y = tf.constant(labels)
    totals = np.zeros(4)
    for start in range(0, len(x), chunk):
        q = np.arange(start, min(len(x), start + chunk))
        queries = tf.constant(np.concatenate([-2.0 * x[q], np.ones((len(q), 1), x.dtype)], 1))
        d = tf.matmul(queries, items, transpose_b=True)
        d = tf.tensor_scatter_nd_update(
            d, np.stack([np.arange(len(q)), q], 1), tf.fill([len(q)], np.inf)
        )
        near = tf.math.top_k(-d, k=m).indices
        rel = (tf.gather(y, near) == tf.gather(y, q)[:, None]).numpy()
        r = r_all[q]
        within = rel & (np.arange(m) < r[:, None])
        hits = np.cumsum(within, axis=1)
        totals += [
            rel[:, 0].sum(),
            rel[:, :k].any(1).sum(),
            (within.sum(1) / r).sum(),
            ((hits / np.arange(1, m + 1) * within).sum(1) / r).sum(),
        ]
    p1, rk, rp, mapr = (totals / len(x)).tolist()
    return {"precision_at_1": p1, f"recall_at_{k}": rk, "r_precision": rp, "map_at_r": mapr}


IMPLS = {"ours": ours, "sklearn": sklearn_brute, "tf": tf_top_k}


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_case(impl: str, n: int, classes: int) -> dict:
    """One call in this process: seconds, CPU seconds, peak MB, scores."""
    x, labels = embeddings(n, classes)
    fn = IMPLS[impl]
    # One call on 256 items first, outside the measurement: imports, thread pools, TF's
    # runtime, and for ours the compiled kernels (`retrieval_kernels`, ~0.15 s to load from
    # Numba's cache, ~2 s to compile on a fresh checkout) are one-time costs per process.
    fn(*embeddings(256, 8, seed=1))
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM := VmRSS
        before, source = _status_kb("VmRSS"), "VmHWM"
    except OSError:
        before, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    wall, cpu = time.perf_counter(), time.process_time()
    scores = fn(x, labels)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = _status_kb("VmHWM") if source == "VmHWM" else None
    if after is None:
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": wall, "cpu": cpu, "peak_mb": (after - before) / 1024,
            "memory": source, "scores": scores}


def case_in_subprocess(impl: str, n: int, classes: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.retrieval", "--case", impl, str(n), str(classes)],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def measure(n: int, classes: int, repeats: int, with_tf: bool) -> dict:
    """Alternating repeats; medians and the load averages seen."""
    runs = {"ours": [], "sklearn": [], "tf": []}
    loads = [load()]
    for _ in range(repeats):
        for impl in ("ours", "sklearn") + (("tf",) if with_tf else ()):
            result = case_in_subprocess(impl, n, classes)
            if "error" in result:
                return {"error": f"{impl}: {result['error']}", "loads": loads}
            runs[impl].append(result)
            loads.append(load())
    return {"runs": runs, "loads": loads}


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--classes", default=",".join(map(str, CLASSES)))
    parser.add_argument("--repeats", type=int, default=3, help="repeats at N <= 16k")
    parser.add_argument("--repeats-large", type=int, default=1, help="repeats at N > 16k")
    parser.add_argument("--quick", action="store_true", help="N = 16k only")
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow variant")
    parser.add_argument("--case", nargs=3, metavar=("IMPL", "N", "C"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # child process: one measurement, JSON on stdout
        print(json.dumps(run_case(args.case[0], int(args.case[1]), int(args.case[2]))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [s for s in sizes if s <= 16_000]
    classes_list = [int(c) for c in args.classes.split(",")]

    started = time.perf_counter()
    cpus = len(os.sched_getaffinity(0))
    print(f"{cpus} CPUs; load average (1 min/5 min) {load()} at start.\n")
    print(
        f"## Leave-one-out retrieval, D={DIM}, balanced classes: retrieval_metrics vs "
        "NearestNeighbors(brute).kneighbors(k = R_max + 1)\n"
    )
    print(
        "| N | classes | R_max | ours s (median) | ours CPU s | sklearn s (median) "
        "| sklearn CPU s | ratio ours/sklearn | ours peak MB | sklearn peak MB | repeats "
        "| load before → after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    tf_rows = []
    memory = "VmHWM"
    for n in sizes:
        for classes in classes_list:
            repeats = args.repeats if n <= 16_000 else args.repeats_large
            with_tf = not args.no_tf and n <= TF_MAX_N
            got = measure(n, classes, repeats, with_tf)
            cells = [f"{n:,}", str(classes), f"{n // classes - 1:,}"]
            if "error" in got:
                print("| " + " | ".join(cells + [got["error"]] + [""] * 8) + " |", flush=True)
                continue
            a, b = got["runs"]["ours"], got["runs"]["sklearn"]
            memory = a[0]["memory"]
            cells += [
                f"{median(a, 'seconds'):.2f}", f"{median(a, 'cpu'):.2f}",
                f"{median(b, 'seconds'):.2f}", f"{median(b, 'cpu'):.2f}",
                f"{median(a, 'seconds') / median(b, 'seconds'):.2f}",
                f"{max(r['peak_mb'] for r in a):.0f}", f"{max(r['peak_mb'] for r in b):.0f}",
                str(repeats), f"{got['loads'][0]} → {got['loads'][-1]}",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
            if with_tf:
                t = got["runs"]["tf"]
                diff = max(
                    abs(t[0]["scores"][key] - a[0]["scores"][key]) for key in a[0]["scores"]
                )
                tf_rows.append((n, classes, median(t, "seconds"), median(a, "seconds"), diff))
    if tf_rows:
        print("\n## The same scores with TensorFlow (tf.matmul + tf.math.top_k per block)\n")
        print("| N | classes | TF s (median) | ours s (median) | TF / ours | max |Δ score| |")
        print("|---|---|---|---|---|---|")
        for n, classes, t, a, diff in tf_rows:
            print(f"| {n:,} | {classes} | {t:.2f} | {a:.2f} | {t / a:.1f} | {diff:.1e} |")
    print(
        f"\nPeak memory: growth of the RSS high-water mark over the call ({memory}). "
        f"Load average {load()} at the end; total {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
