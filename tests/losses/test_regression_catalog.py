"""The regression task in the catalogue: its outputs and head widths, the entries, their
compare defaults and search spaces, and the tuple argument type the quantiles use."""

import numpy as np
import pytest

import losses
from losses.spec import OUTPUTS, TASKS, Arg

REGRESSION = ["gaussian_nll", "huber", "log_cosh", "mae", "mse", "pinball"]


def test_regression_is_a_task_with_three_head_kinds():
    assert "regression" in TASKS
    assert sorted(o for o, t in OUTPUTS.items() if t == "regression") == [
        "mean_logvar", "quantiles", "value"]
    assert losses.names("regression") == REGRESSION


@pytest.mark.parametrize(("name", "output", "units"), [
    ("mse", "value", 1), ("mae", "value", 1), ("huber", "value", 1), ("log_cosh", "value", 1),
    ("pinball", "quantiles", 3), ("gaussian_nll", "mean_logvar", 2),
])
def test_each_entry_names_its_head(name, output, units):
    spec = losses.spec(name)
    assert (spec.task, spec.output, losses.output_units(spec)) == ("regression", output, units)
    assert isinstance(spec.build({}), spec.cls)


def test_heads_of_other_tasks_have_no_fixed_width():
    for spec in losses.specs():
        if spec.task != "regression":
            assert losses.output_units(spec) is None, spec.name


def test_compare_defaults_and_search_spaces():
    compared = sorted(s.name for s in losses.specs("regression") if s.in_compare)
    assert compared == ["gaussian_nll", "huber", "log_cosh", "mae", "mse"]
    assert losses.spec("huber").search_space() == {"delta": ("log", 0.1, 10.0)}
    assert losses.spec("gaussian_nll").search_space() == {"beta": ("float", 0.0, 1.0)}
    assert losses.spec("pinball").search_space() == {"crossing": ("choice", (0.0, 0.1, 1.0))}
    for name in ("mse", "mae", "log_cosh"):
        assert losses.spec(name).args == ()


def test_a_regression_output_on_another_task_is_refused():
    with pytest.raises(ValueError, match="output='value'; valid for classification: logits"):
        losses.LossSpec(name="x", target="m:C", task="classification", output="value", args=())


def test_tuple_arguments_check_each_item_and_the_order():
    levels = Arg("levels", tuple, (1.0,), low=0.0, increasing=False)
    assert levels.check([3, 1.5]) == (3.0, 1.5)  # no order asked for: any order
    assert levels.check(np.array([3.0, 1.5])) == levels.check([np.float32(3), 1.5]) == (3.0, 1.5)
    assert levels.valid() == "comma-separated numbers, each >= 0 (e.g. 0.1,0.5,0.9)"
    for bad in ([], "0.5", [True], [0.1, None], 0.5, np.array(0.5), {}):
        with pytest.raises(losses.LossArgError, match="is not a non-empty list of numbers"):
            levels.check(bad)
    with pytest.raises(losses.LossArgError, match=r"levels=1,-2 has -2 out of range"):
        levels.check((1, -2))
    assert levels.describe().startswith("levels: tuple, default 1; comma-separated numbers")
