"""Regression loss benchmark: `python -m benchmarks.regression_losses` (TensorFlow backend).

Each of ours against its reference at B = 4096, forward and forward+backward, both under
tf.function with the gradient taken with respect to the predictions:

- mse, mae, huber (δ = 1), log_cosh vs Keras's MeanSquaredError, MeanAbsoluteError, Huber,
  LogCosh on a (B, 1) head (goal: <= 1.1×);
- pinball (τ = 0.1, 0.5, 0.9) vs the plain keras.ops one-liner
  mean(max(τu, (τ − 1)u)) on a (B, 3) head (goal: <= 1.1×), and with its non-crossing
  penalty (crossing = 1) against itself without (crossing = 0): what the penalty costs;
- gaussian_nll (β = 0.5) vs the unfloored one-liner mean(½(s + (y − μ)² e^{−s})): what
  the floor, the cap and the β weight cost.

Timing: ROUNDS rounds; in each, ours then the reference, CALLS calls each after one warm-up
(tracing) call, median per side. The ratio is taken per round and the median of the ratios is
printed, so a change of machine load during the run hits both sides. `--quick` (2 rounds of
5 calls, B = 512) is the smoke test's size; the default run takes about a minute on 2 CPUs.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402 (the backend is chosen above)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

import losses  # noqa: E402
from benchmarks.losses import compiled_pair, load_line, ms  # noqa: E402

QUANTILES = (0.1, 0.5, 0.9)


def pinball_one_liner(y, x):
    q = ops.convert_to_tensor(QUANTILES, "float32")
    u = y - x  # (B, 1) − (B, Q)
    return ops.mean(ops.maximum(q * u, (q - 1.0) * u))


def nll_one_liner(y, x):
    return ops.mean(0.5 * (x[:, 1] + ops.square(y[:, 0] - x[:, 0]) * ops.exp(-x[:, 1])))


def cases():
    """(name, ours, reference name, reference, head width)."""
    return [
        ("mse", losses.MSELoss(), "keras MeanSquaredError", keras.losses.MeanSquaredError(), 1),
        ("mae", losses.MAELoss(), "keras MeanAbsoluteError", keras.losses.MeanAbsoluteError(),
         1),
        ("huber δ=1", losses.HuberLoss(1.0), "keras Huber", keras.losses.Huber(1.0), 1),
        ("log_cosh", losses.LogCoshLoss(), "keras LogCosh", keras.losses.LogCosh(), 1),
        ("pinball τ=0.1,0.5,0.9", losses.PinballLoss(QUANTILES), "keras.ops one-liner",
         pinball_one_liner, 3),
        ("pinball, crossing=1", losses.PinballLoss(QUANTILES, 1.0), "pinball, crossing=0",
         losses.PinballLoss(QUANTILES, 0.0), 3),
        ("gaussian_nll β=0.5", losses.GaussianNLLLoss(0.5), "unfloored NLL one-liner",
         nll_one_liner, 2),
    ]


def as_function(loss):
    """loss as a plain function of (y, x) (autograph cannot parse two lambdas on one line)."""
    def call(y, x):
        return loss(y, x)

    return call


def timed(fn, y, x, calls):
    """Median seconds of `calls` calls of fn(y, x) (result forced to host), after a warm-up."""
    np.asarray(fn(y, x))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        np.asarray(fn(y, x))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(ours, theirs, y, x, rounds, calls):
    """{mode: (ours median s, reference median s, median of per-round ratios)}, mode 0 the
    forward pass, 1 forward+backward."""
    pairs = compiled_pair(as_function(ours)), compiled_pair(as_function(theirs))
    out = {}
    for mode in (0, 1):
        a, b = [], []
        for _ in range(rounds):
            a.append(timed(pairs[0][mode], y, x, calls))
            b.append(timed(pairs[1][mode], y, x, calls))
        ratios = [p / q for p, q in zip(a, b, strict=True)]
        out[mode] = statistics.median(a), statistics.median(b), statistics.median(ratios)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=100, help="timed calls per side and round")
    parser.add_argument("--quick", action="store_true", help="B = 512, 2 rounds of 5 calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.calls = 512, 2, 5
    started = time.perf_counter()
    print(f"Machine: {load_line()} at start.\n")
    print(f"## Regression losses, B={args.batch} (times in ms, median of {args.rounds} rounds; "
          "ratio = median of per-round ratios, < 1 means ours is faster)\n")
    print("| case | reference | ours fwd | ref fwd | ratio fwd | ours fwd+bwd | ref fwd+bwd "
          "| ratio fwd+bwd |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    y = tf.constant(rng.normal(size=(args.batch, 1)).astype("float32"))
    for name, ours, ref_name, theirs, width in cases():
        x = tf.constant((y.numpy() + rng.normal(size=(args.batch, width))).astype("float32"))
        got = measure(ours, theirs, y, x, args.rounds, args.calls)
        (fa, fb, fr), (ba, bb, br) = got[0], got[1]
        print(f"| {name} | {ref_name} | {ms(fa)} | {ms(fb)} | {fr:.2f} | {ms(ba)} | {ms(bb)} "
              f"| {br:.2f} |", flush=True)
    print(f"\nMachine: {load_line()} at the end; total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
