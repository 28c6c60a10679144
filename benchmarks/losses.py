"""Loss benchmarks: `python -m benchmarks.losses` (TensorFlow backend, CPU or GPU).

Prints a markdown table of median times (forward, forward+backward) and, for the triplet
losses, the peak extra memory of each case:

- semi-hard triplet (losses.TripletLoss, O(B²)) vs a re-implementation of the tiled
  B²×B algorithm of TensorFlow Addons' `triplet_semihard_loss` (O(B³) memory), D = 64;
- focal vs `keras.losses.CategoricalFocalCrossentropy` and balanced CE vs
  `keras.losses.SparseCategoricalCrossentropy`, B = 4096, C = 10 and 1000;
- the long-tail losses (logit-adjusted CE, LDAM with and without its DRW weights,
  class-balanced focal, Poly-1) vs `keras.losses.SparseCategoricalCrossentropy`, same
  sizes, each built from an exponential IR = 100 class profile (goal: <= 1.3×).

Memory: tracemalloc does not see TensorFlow's allocator. On GPU the peak comes from
`tf.config.experimental.get_memory_info`; on CPU each triplet case runs in a fresh
subprocess and reports the growth of its RSS high-water mark (`resource.getrusage`) from
just before the first call to the end. Options: `--sizes 128,512`, `--quick`,
`--only classification` (or `triplet`).

Timing: one untimed warm-up call (tracing), then repeated calls for about BUDGET_S seconds
(at least MIN_CALLS, so a 3-second case costs ~4 calls, not 20). Ours and Keras's
classification losses are timed in alternating rounds and the ratio is taken per round,
so a change of machine load during the run hits both sides. The load average is printed
with the tables; on a shared machine, compare ratios rather than absolute times.
The default run takes about 5 minutes on 2 idle CPU cores (3 of them classification).
"""

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

SIZES = [128, 512, 4096]
# One float32 B³ tensor is 4 GB at B = 1024; the baseline holds several at once.
BASELINE_MAX_B = 512
DIM = 64
BUDGET_S = 1.0  # target seconds of timed calls per measurement
MIN_CALLS = 3  # timed calls even when one call takes longer than BUDGET_S
ROUNDS = 3  # alternating ours/Keras rounds per classification case


def tfa_semihard(labels, embeddings, margin=0.2):
    """TF Addons' semi-hard triplet loss, rebuilt from its description: the (B, B)
    distance matrix is tiled to (B², B) so every (anchor, positive) row can mask the
    negatives farther than d(a, p) and take their minimum. Divides by the number of
    positive pairs (NaN when there are none, as in TF Addons)."""
    import tensorflow as tf

    from losses import pairwise_distances

    labels = tf.reshape(labels, [-1, 1])
    batch = tf.shape(labels)[0]
    pdist = pairwise_distances(embeddings, "euclidean")
    adjacency_not = tf.logical_not(tf.equal(labels, tf.transpose(labels)))
    pdist_tile = tf.tile(pdist, [batch, 1])  # (B², B)
    mask = tf.logical_and(
        tf.tile(adjacency_not, [batch, 1]),
        tf.greater(pdist_tile, tf.reshape(tf.transpose(pdist), [-1, 1])),
    )
    mask_final = tf.transpose(
        tf.reshape(tf.reduce_any(mask, axis=1, keepdims=True), [batch, batch])
    )
    mask_f = tf.cast(mask, pdist.dtype)
    row_max = tf.reduce_max(pdist_tile, axis=1, keepdims=True)
    outside = tf.reduce_min((pdist_tile - row_max) * mask_f, axis=1, keepdims=True) + row_max
    outside = tf.transpose(tf.reshape(outside, [batch, batch]))
    not_f = tf.cast(adjacency_not, pdist.dtype)
    row_min = tf.reduce_min(pdist, axis=1, keepdims=True)
    inside = tf.reduce_max((pdist - row_min) * not_f, axis=1, keepdims=True) + row_min
    inside = tf.tile(inside, [1, batch])
    negatives = tf.where(mask_final, outside, inside)
    mask_pos = tf.cast(tf.logical_not(adjacency_not), pdist.dtype) - tf.eye(batch)
    loss_mat = tf.maximum(margin + pdist - negatives, 0.0) * mask_pos
    return tf.reduce_sum(loss_mat) / tf.reduce_sum(mask_pos)


def median_time(fn, *args, warm_up=True):
    """Median wall time of fn(*args) (result forced to host): MIN_CALLS to 20 calls,
    as many as fit in about BUDGET_S, after one untimed warm-up call."""
    import numpy as np

    if warm_up:
        np.asarray(fn(*args))
    times = []
    while len(times) < MIN_CALLS or (sum(times) < BUDGET_S and len(times) < 20):
        start = time.perf_counter()
        np.asarray(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compiled_pair(loss_fn):
    """(forward, forward+backward) tf.functions of a scalar loss(y, x); the second returns
    the gradient with respect to x."""
    import tensorflow as tf

    @tf.function
    def backward(y, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss_fn(y, x)
        return tape.gradient(value, x)

    return tf.function(loss_fn), backward


def timed_pair(loss_fn, y, x):
    """(forward s, forward+backward s) of a scalar loss, both under tf.function."""
    forward, backward = compiled_pair(loss_fn)
    return median_time(forward, y, x), median_time(backward, y, x)


def run_triplet_case(impl, batch):
    """One triplet case in this process; returns a dict with times and peak memory (MB)."""
    import numpy as np
    import tensorflow as tf

    import losses

    rng = np.random.default_rng(0)
    # P×K batch: 8 per class, so every anchor has positives and negatives.
    labels = tf.constant(np.repeat(np.arange(batch // 8), 8).astype("int32"))
    emb = tf.constant(rng.normal(size=(batch, DIM)).astype("float32"))
    ours = losses.TripletLoss(margin=0.2, mining="semi-hard")
    fn = (lambda y, x: ours(y, x)) if impl == "ours" else tfa_semihard
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
        before = tf.config.experimental.get_memory_info("GPU:0")["current"]
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    forward, backward = compiled_pair(fn)
    value = float(forward(labels, emb))  # the warm-up call of the forward timing
    fwd = median_time(forward, labels, emb, warm_up=False)
    fwd_bwd = median_time(backward, labels, emb)
    if gpu:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"forward": fwd, "backward": fwd_bwd, "peak_mb": peak / 2**20, "value": value}


def triplet_case_in_subprocess(impl, batch):
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.losses", "--case", impl, str(batch)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def long_tail_losses(classes):
    """(name, loss) of each long-tail loss at its defaults, from n_c = ⌊5000·100^(−c/(C−1))⌋."""
    import numpy as np

    import losses

    counts = [int(5000 * 100 ** (-c / (classes - 1))) for c in range(classes)]
    labels = np.repeat(np.arange(classes), counts)
    drw = losses.drw_weights(counts)
    return [
        ("logit-adjusted CE τ=1", losses.LogitAdjustedCrossentropy.from_labels(labels)),
        ("LDAM s=30", losses.LDAMLoss(counts)),
        ("LDAM s=30, DRW weights", losses.LDAMLoss(counts, class_weights=drw)),
        ("class-balanced focal γ=2", losses.FocalLoss.from_labels(labels)),
        ("Poly-1 ε=1", losses.PolyLoss(1.0)),
    ]


def classification_rows(sizes_c):
    import keras
    import numpy as np
    import tensorflow as tf

    import losses

    rows = []
    rng = np.random.default_rng(0)
    batch = 4096
    sparse_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for classes in sizes_c:
        labels = rng.integers(0, classes, size=batch).astype("int32")
        logits = tf.constant(rng.normal(scale=3.0, size=(batch, classes)).astype("float32"))
        y = tf.constant(labels)
        one_hot = tf.constant(np.eye(classes, dtype="float32")[labels])
        pairs = [
            (
                "focal γ=2 α=0.25",
                lambda y, x: losses.FocalLoss(2.0, 0.25)(y, x),
                y,
                lambda y, x: keras.losses.CategoricalFocalCrossentropy(
                    alpha=0.25, gamma=2.0, from_logits=True
                )(y, x),
                one_hot,
                "CategoricalFocalCrossentropy",
            ),
            (
                "balanced CE",
                lambda y, x, c=classes: losses.BalancedCrossentropy(np.linspace(0.5, 2, c))(y, x),
                y,
                lambda y, x: keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, x),
                y,
                "SparseCategoricalCrossentropy",
            ),
        ]
        for name, loss in long_tail_losses(classes):
            pairs.append(
                (
                    name,
                    lambda y, x, loss=loss: loss(y, x),
                    y,
                    lambda y, x: sparse_ce(y, x),
                    y,
                    "SparseCategoricalCrossentropy",
                )
            )
        for name, ours, y_ours, theirs, y_theirs, keras_name in pairs:
            ours_fns, theirs_fns = compiled_pair(ours), compiled_pair(theirs)
            times = {"a": [[], []], "b": [[], []]}  # side -> [forward, fwd+bwd] per round
            for round_ in range(ROUNDS):
                for mode in (0, 1):
                    times["a"][mode].append(
                        median_time(ours_fns[mode], y_ours, logits, warm_up=round_ == 0)
                    )
                    times["b"][mode].append(
                        median_time(theirs_fns[mode], y_theirs, logits, warm_up=round_ == 0)
                    )
            rows.append((f"{name}, B={batch}, C={classes}", keras_name, times["a"], times["b"]))
    return rows


def summarize(ours, theirs):
    """(ours median s, Keras median s, median of the per-round ratios)."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios)


def load_line():
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def ms(seconds):
    return f"{seconds * 1e3:.2f}"


def triplet_table(sizes):
    print(f"## Semi-hard triplet loss, D={DIM} (times in ms, median; memory = peak extra MB)\n")
    print(
        "| B | ours fwd | ours fwd+bwd | ours MB | TFA-style fwd | TFA-style fwd+bwd "
        "| TFA-style MB | speed-up fwd | speed-up fwd+bwd |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    mismatches = []
    for batch in sizes:
        ours = triplet_case_in_subprocess("ours", batch)
        if batch <= BASELINE_MAX_B:
            base = triplet_case_in_subprocess("tfa", batch)
        else:
            base = {"error": f"skipped: B³ float32 = {batch**3 * 4 / 2**30:.0f} GB per tensor"}
        cells = [str(batch)]
        cells += (
            [ms(ours["forward"]), ms(ours["backward"]), f"{ours['peak_mb']:.0f}"]
            if ("error" not in ours)
            else [ours["error"], "", ""]
        )
        if "error" in base:
            cells += [base["error"], "", "", "", ""]
        else:
            cells += [ms(base["forward"]), ms(base["backward"]), f"{base['peak_mb']:.0f}"]
            both = "error" not in ours
            cells.append(f"{base['forward'] / ours['forward']:.1f}×" if both else "")
            cells.append(f"{base['backward'] / ours['backward']:.1f}×" if both else "")
            # Same semi-hard definition, same data: the two values must agree.
            if both and abs(base["value"] - ours["value"]) > 1e-4 * max(1.0, abs(ours["value"])):
                mismatches.append((batch, ours["value"], base["value"]))
        print("| " + " | ".join(cells) + " |", flush=True)
    for batch, a, b in mismatches:
        print(f"\nWARNING: B={batch}: ours = {a:.6f} but TFA-style = {b:.6f}")


def classification_table(sizes_c):
    print(
        f"\n## Classification losses vs Keras (times in ms, median of {ROUNDS} alternating "
        "rounds; ratio = median of per-round ratios, < 1 means ours is faster)\n"
    )
    print(
        "| case | Keras loss | ours fwd | Keras fwd | ratio fwd | ours fwd+bwd "
        "| Keras fwd+bwd | ratio fwd+bwd |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, keras_name, a, b in classification_rows(sizes_c):
        fwd, bwd = summarize(a[0], b[0]), summarize(a[1], b[1])
        print(
            f"| {name} | {keras_name} | {ms(fwd[0])} | {ms(fwd[1])} | {fwd[2]:.2f} "
            f"| {ms(bwd[0])} | {ms(bwd[1])} | {bwd[2]:.2f} |",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--quick", action="store_true", help="B up to 512, C = 10 only")
    parser.add_argument("--only", choices=("triplet", "classification"), help="one table")
    parser.add_argument("--case", nargs=2, metavar=("IMPL", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # child process: one triplet case, JSON on stdout
        print(json.dumps(run_triplet_case(args.case[0], int(args.case[1]))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [b for b in sizes if b <= 512]

    started = time.perf_counter()
    print(f"Machine: {load_line()} at start.\n")
    if args.only != "classification":
        triplet_table(sizes)
    if args.only != "triplet":
        classification_table([10] if args.quick else [10, 1000])
    print(f"\nMachine: {load_line()} at the end; total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
