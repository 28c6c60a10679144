"""Regression loss arguments on the command line: `quantiles=0.1,0.5,0.9` parses to a tuple,
and a bad quantile, δ or β is a ConfigError naming the value and the valid range, which the
CLI turns into exit code 2 before any run starts."""

import json

import pytest

from training.cli import run_cli
from training.config import Config, parse_overrides
from training.errors import ConfigError
from training.run.tracking import run_params


def test_quantiles_parse_as_a_tuple_and_round_trip_through_config_json():
    config = parse_overrides(["loss=pinball", "dataset=diabetes", "quantiles=0.05,0.5,0.95",
                              "crossing=1"])
    assert config.loss_args == {"quantiles": (0.05, 0.5, 0.95), "crossing": 1.0}
    logged = json.loads(config.to_json())  # config.json stores the tuple as a list
    assert logged["loss_args"]["quantiles"] == [0.05, 0.5, 0.95]
    assert Config.from_dict(logged).loss_args["quantiles"] == (0.05, 0.5, 0.95)
    # the run's param reads as it was typed
    assert run_params(config)["loss.quantiles"] == "0.05,0.5,0.95"


@pytest.mark.parametrize(("argv", "needle"), [
    (["loss=pinball", "quantiles=0,0.5"], "quantiles=0,0.5 has 0 out of range"),
    (["loss=pinball", "quantiles=0.5,1.5"], "quantiles=0.5,1.5 has 1.5 out of range"),
    (["loss=pinball", "quantiles=0.9,0.1"], "quantiles=0.9,0.1 is not sorted (0.9 before 0.1)"),
    (["loss=pinball", "quantiles=0.5,0.5"], "quantiles=0.5,0.5 repeats 0.5"),
    (["loss=huber", "delta=0"], "delta=0.0 is out of range; valid: > 0 number"),
    (["loss=huber", "delta=-1"], "delta=-1.0 is out of range; valid: > 0 number"),
    (["loss=gaussian_nll", "beta=1.5"], "beta=1.5 is out of range; valid: >= 0 and <= 1"),
    (["loss=gaussian_nll", "beta=-0.5"], "beta=-0.5 is out of range; valid: >= 0 and <= 1"),
])
def test_bad_regression_arguments_exit_2_naming_value_and_range(argv, needle, capsys):
    with pytest.raises(ConfigError) as info:
        parse_overrides(argv)
    assert needle in str(info.value)

    def never(_config):
        raise AssertionError("training started on a bad argument")

    assert run_cli(never, argv) == 2
    assert needle in capsys.readouterr().err
