"""The one options check every door shares (the Python API, `fer-ros video -p`, bag-eval, the
node, training configs) and the one YAML reader for what people write: NaN and infinity are out
of every range, a message never expands a value, and YAML aliases are refused."""

import dataclasses
import math

import pytest
import yaml
from bounded import run_bounded
from hostile import YAML_ALIAS_BOMB

from fer_ros.errors import ConfigError
from fer_ros.imagecheck import DecodeOptions
from fer_ros.inference.engine import EngineOptions
from fer_ros.inference.pipeline import PipelineOptions
from fer_ros.options import MAX_YAML_CHARS, from_params, read_yaml, specs
from fer_ros.training.config import Config


def ranged_float_specs():
    sections = [type(getattr(Config(), f.name)) for f in dataclasses.fields(Config)]
    groups = [PipelineOptions, EngineOptions, DecodeOptions, *sections]
    return [
        (cls.__name__, spec)
        for cls in groups
        for spec in specs(cls)
        if isinstance(spec.default, float) and (spec.low, spec.high) != (None, None)
    ]


def test_nan_and_infinity_are_outside_every_range():
    names = {spec.name for _, spec in ranged_float_specs()}
    assert {"smoothing_alpha", "track_timeout", "lr", "ema"} <= names  # the pipeline's, training's
    for owner, spec in ranged_float_specs():
        for value in (math.nan, math.inf, -math.inf):
            reason = spec.problem(value)
            assert reason and "must be a finite number" in reason, (owner, spec.name, reason)
        assert spec.problem(spec.default) is None, (owner, spec.name)
    with pytest.raises(ConfigError, match="smoothing_alpha must be a finite number within 0.01"):
        from_params(PipelineOptions, {"smoothing_alpha": math.nan})
    with pytest.raises(ConfigError, match="track_timeout must be a finite number within 0..60"):
        PipelineOptions(track_timeout=math.inf)


def test_a_refused_value_is_shown_short_however_large_it_is():
    row = [0.5] * 100
    nested = [[row] * 100] * 100  # a million numbers by reference: repr() writes 5 MB
    for spec in specs(PipelineOptions):
        reason = spec.problem(nested)
        assert reason and len(reason) < 300, (spec.name, len(reason))
    reason = {s.name: s for s in specs(PipelineOptions)}["detector"].problem("y" * 100_000)
    assert len(reason) < 300 and "..." in reason


def test_yaml_is_plain_data_without_aliases():
    plain = read_yaml("a: [1, 2.5, .nan, x]\nb: &anchor 3")  # an anchor alone repeats nothing
    assert plain["b"] == 3 and plain["a"][::3] == [1, "x"] and math.isnan(plain["a"][2])
    with pytest.raises(ConfigError, match=r"-p detector: YAML aliases \(\*name\) are not"):
        read_yaml(YAML_ALIAS_BOMB, "-p detector")
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_yaml("[" * 100_000)
    with pytest.raises(ConfigError, match="more than the 1000000 accepted"):
        read_yaml("#" * (MAX_YAML_CHARS + 1))
    with pytest.raises(ConfigError, match="digits"):
        read_yaml("9" * 5000)  # more digits than Python turns into an int
    with pytest.raises(yaml.YAMLError):  # not YAML: the caller decides (-p keeps it as a string)
        read_yaml("a: [b")
    with pytest.raises(yaml.constructor.ConstructorError):
        read_yaml("!!python/object/apply:os.system ['true']")  # safe types only


def test_a_training_config_of_aliases_is_refused_in_a_second(tmp_path):
    """A 298-byte --config once reached 2.7 GB and MemoryError (its error message expanded the
    aliases); here in a child that may use 1.5 GB and a minute, with `--set` as well."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"train:\n  epochs: {YAML_ALIAS_BOMB}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [epochs\n")
    done = run_bounded(f"""
        from fer_ros.training.config import load_config
        for args in (({str(bomb)!r},), ("synthetic", ["optim.lr={YAML_ALIAS_BOMB}"]),
                     ({str(broken)!r},)):
            try:
                load_config(*args)
            except ValueError as err:
                print(type(err).__name__, err)
    """)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 3, done
    assert lines[0].startswith(f"ConfigError {bomb}: YAML aliases (*name) are not accepted")
    assert lines[1].startswith("ConfigError override: optim.lr: YAML aliases")
    assert lines[2].startswith(f"ConfigError {broken} is not valid YAML")
