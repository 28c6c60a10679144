"""Class-rebalancing samplers: drawn class frequencies against n_c^q / Σ n^q (chi-square, fixed
seed), the progressive schedule, even repetition inside a class, purity in (seed, epoch), and
the pipeline hook replaying an epoch on resume."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from training.config import Config, ConfigError
from training.data import classification_dataset, classification_steps_per_epoch
from training.data.samplers import (
    class_probabilities,
    epoch_index_function,
    epoch_indices,
    exponent,
)

COUNTS = [400, 120, 40, 12, 4]  # a long tail, IR 100
Y = np.repeat(np.arange(5), COUNTS)


def expected_shares(counts, q):
    """n_c^q / Σ n^q by hand, one class at a time."""
    powered = [float(n) ** q for n in counts]
    return [p / sum(powered) for p in powered]


@pytest.mark.parametrize("q", [1.0, 0.5, 0.0, 0.3])
def test_class_probabilities_by_hand(q):
    np.testing.assert_allclose(class_probabilities(COUNTS, q), expected_shares(COUNTS, q))


def test_absent_class_is_never_drawn():
    np.testing.assert_allclose(class_probabilities([3, 0, 1], 0.0), [0.5, 0.0, 0.5])


@pytest.mark.parametrize("sampler", ["class_balanced", "sqrt"])
def test_drawn_class_frequencies_follow_n_to_the_q(sampler):
    """60 epochs × 576 draws: chi-square goodness of fit against n_c^q / Σ n^q."""
    q = exponent(sampler, 0, 10)
    draw = epoch_index_function(sampler, Y, seed=7, epochs=60)
    labels = np.concatenate([Y[draw(e)] for e in range(60)])
    observed = np.bincount(labels, minlength=5)
    expected = np.array(expected_shares(COUNTS, q)) * labels.size
    assert stats.chisquare(observed, expected).pvalue > 0.01
    # ... and not the instance distribution, which the same test rejects outright.
    instance = np.array(expected_shares(COUNTS, 1.0)) * labels.size
    assert stats.chisquare(observed, instance).pvalue < 1e-6


def test_progressive_moves_q_from_one_to_zero():
    assert [exponent("progressive", e, 5) for e in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert exponent("progressive", 0, 1) == 1.0
    # Its middle epoch of 5 draws like sqrt: chi-square over 60 seeds of that epoch.
    labels = np.concatenate([Y[epoch_index_function("progressive", Y, s, 5)(2)]
                             for s in range(60)])
    expected = np.array(expected_shares(COUNTS, 0.5)) * labels.size
    assert stats.chisquare(np.bincount(labels, minlength=5), expected).pvalue > 0.01


def test_instance_is_the_plain_permutation():
    np.testing.assert_array_equal(epoch_index_function("instance", Y, 3, 10)(4),
                                  np.random.default_rng([3, 4]).permutation(len(Y)))


def test_images_of_a_class_repeat_evenly():
    order = epoch_indices(Y, 0.0, seed=1, epoch=0)
    assert len(order) == len(Y) and order.dtype == np.int64
    for c in range(5):
        members = np.flatnonzero(Y == c)
        drawn = np.bincount(order[Y[order] == c], minlength=len(Y))[members]
        assert drawn.max() - drawn.min() <= 1  # whole permutations, then part of one


def test_a_pure_function_of_seed_and_epoch():
    first = epoch_index_function("sqrt", Y, 5, 10)
    again = epoch_index_function("sqrt", Y, 5, 10)
    np.testing.assert_array_equal(first(3), again(3))
    assert not np.array_equal(first(3), first(4))
    assert not np.array_equal(first(3), epoch_index_function("sqrt", Y, 6, 10)(3))


def test_pipeline_hook_reads_the_sampler_and_resumes_exactly():
    n = len(Y)
    x = np.repeat((np.arange(n, dtype=np.float32) / n)[:, None, None, None], 4, axis=1)
    x = x.reshape(n, 2, 2, 1)
    draw = epoch_index_function("class_balanced", Y, 2, 3)
    steps = classification_steps_per_epoch(Y, 100)
    batches = list(classification_dataset(x, Y, 100, seed=2, epoch_indices=draw)
                   .take(3 * steps))
    read = np.concatenate([np.rint(np.asarray(b[0])[:, 0, 0, 0] * n) for b in batches])
    np.testing.assert_array_equal(read, np.concatenate([draw(e) for e in range(3)]))
    labels = np.concatenate([np.asarray(b[1]) for b in batches])
    np.testing.assert_array_equal(labels, Y[read.astype(int)])
    resumed = list(classification_dataset(x, Y, 100, seed=2, initial_epoch=2,
                                          epoch_indices=draw).take(steps))
    for a, b in zip(resumed, batches[2 * steps:], strict=True):
        np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))


def test_config_keys():
    assert Config(sampler="sqrt", imbalance=10).sampler == "sqrt"
    with pytest.raises(ConfigError, match="sampler='square'"):
        Config(sampler="square")
    with pytest.raises(ConfigError, match="are for classification"):
        Config(loss="triplet", sampler="class_balanced")
