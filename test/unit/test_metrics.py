"""Scores the benchmarks, the trainer and bag-eval report (metrics.py): confusion counts, their
summary, latency percentiles and calibration."""

import numpy as np
import pytest
import torch

from fer_ros.metrics import (
    calibration_error,
    confusion_matrix,
    fit_temperature,
    latency_stats,
    percentile,
    summarize,
    with_temperature,
)


def test_confusion_counts_skip_unusable_samples_and_summarise():
    true = torch.tensor([0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(true, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]  # the -1 sample is not counted
    s = summarize(cm, ("a", "b", "c"))
    assert s["samples"] == 5 and s["accuracy"] == pytest.approx(3 / 5)
    assert s["per_class"]["b"] == pytest.approx(
        {"recall": 1.0, "precision": 2 / 3, "f1": 0.8, "support": 2}
    )
    assert s["mean_recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_macro_averages_leave_out_classes_the_set_does_not_hold():
    cm = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 3)
    assert summarize(cm, ("a", "b", "c"))["macro_f1"] == 1.0


def test_percentiles_and_latency_stats_of_nothing_are_zero():
    assert percentile([], 50) == 0.0 and latency_stats([])["count"] == 0
    stats = latency_stats(float(v) for v in range(1, 101))
    assert (stats["count"], stats["max"], stats["p50"]) == (100, 100.0, 50.5)
    assert percentile(iter([3.0, 1.0, 2.0]), 50) == 2.0


def test_a_temperature_keeps_the_arg_max_and_one_leaves_probabilities_alone():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    assert np.array_equal(with_temperature(p, 1.0), p)
    soft = with_temperature(p, 2.0)
    assert np.array_equal(soft.argmax(1), p.argmax(1)) and np.allclose(soft.sum(1), 1.0)
    assert (soft.max(1) < p.max(1)).all()


def test_calibration_error_and_fitted_temperature():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 7, 2000)
    logits = rng.normal(size=(2000, 7))
    logits[np.arange(2000), true] += 1.0  # right about half the time
    sure = with_temperature(
        np.exp(logits * 4) / np.exp(logits * 4).sum(1, keepdims=True), 1.0
    )  # overconfident
    t = fit_temperature(sure, true)
    assert 3.0 < t < 5.5  # undoes the x4
    assert calibration_error(with_temperature(sure, t), true) < calibration_error(sure, true) / 3
