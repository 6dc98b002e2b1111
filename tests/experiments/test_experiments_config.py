"""Experiment framework units: typed parameters and their validation, TOML/--set parsing, the
registry's checks on experiment classes, per-task seeds, and the Check rules."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from deepeft.errors import DeepEFTInputError
from deepeft.experiments import Experiment, available_experiments, get_experiment, param, register, task_seed, zcheck
from deepeft.experiments.checks import close_check
from deepeft.experiments.config import (
    build_params,
    config_diff,
    describe_params,
    load_toml,
    params_to_dict,
    parse_assignments,
)
from deepeft.experiments.runner import resolve_params
from deepeft.experiments.seeds import TaskContext


@dataclasses.dataclass(frozen=True)
class P:
    n: int = param(10, "samples", min=2)
    rate: float = param(0.5, "a rate", min=0.0, max=1.0)
    flag: bool = param(False, "a switch")
    mode: str = param("fast", "a mode", choices=("fast", "slow"))
    ks: tuple[float, ...] = param((1.0, 2.0), "variances", min=0.0)
    names: tuple[str, ...] = param(("relu",), "names")
    seed: int = param(0, "seed", min=0)


def test_defaults_and_layers_in_order():
    p = build_params(P, {"n": 20}, {"n": 30, "rate": 1}, where=["preset", "--set"])
    assert (p.n, p.rate, p.flag, p.ks) == (30, 1.0, False, (1.0, 2.0))
    assert isinstance(p.rate, float)


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"nn": 3}, "Did you mean 'n'"),
        ({"sed": 3}, "Allowed parameters: n, rate, flag, mode, ks, names, seed"),
        ({"n": "abc"}, "'n' must be int"),
        ({"n": 2.5}, "'n' must be int"),
        ({"n": True}, "'n' must be int"),
        ({"rate": "x"}, "'rate' must be float"),
        ({"rate": math.inf}, "must be finite"),
        ({"flag": 1}, "'flag' must be bool"),
        ({"mode": "fats"}, "must be one of ['fast', 'slow']"),
        ({"n": 1}, "'n' must be >= 2"),
        ({"rate": 2.0}, "'rate' must be <= 1.0"),
        ({"ks": [1.0, -1.0]}, "'ks' must be >= 0.0"),
        ({"ks": ["a"]}, "'ks[0]' must be float"),
        ({"ks": []}, "non-empty list"),
        ({"names": [1]}, "'names[0]' must be str"),
    ],
)
def test_rejects_bad_values_with_what_to_change(values, fragment):
    with pytest.raises(DeepEFTInputError) as info:
        build_params(P, values, where=["--set"])
    assert fragment in str(info.value)
    assert "(from --set)" in str(info.value)


def test_coercions():
    p = build_params(P, {"n": 1e3, "flag": "true", "ks": "0.5, 2", "names": "relu,tanh"})
    assert p.n == 1000 and p.flag is True and p.ks == (0.5, 2.0) and p.names == ("relu", "tanh")
    p = build_params(P, {"ks": 3, "n": "1_000"})
    assert p.ks == (3.0,) and p.n == 1000
    assert params_to_dict(p)["ks"] == [3.0]
    rows = describe_params(P)
    assert [r["name"] for r in rows][:2] == ["n", "rate"] and rows[4]["type"] == "list of float"
    assert not any(r["analysis"] for r in rows)


def test_analysis_params_are_listed():
    from deepeft.experiments.config import analysis_params
    from deepeft.experiments.registry import get_experiment

    names = analysis_params(get_experiment("sgd-phase-diagram").Params)
    assert {"loss_ratio", "max_z", "dbm_transition_factor"} <= names
    assert not names & {"steps", "members", "temperatures", "seed", "dbm_basis", "paramagnetic_T"}


def test_parse_assignments_uses_toml_then_text():
    got = parse_assignments(["n=1000", "rate=0.25", "flag=true", "ks=[1, 2.5]", "names=relu,tanh", 's="x=y"'])
    assert got == {"n": 1000, "rate": 0.25, "flag": True, "ks": [1, 2.5], "names": "relu,tanh", "s": "x=y"}
    with pytest.raises(DeepEFTInputError, match="KEY=VALUE"):
        parse_assignments(["n"])
    with pytest.raises(DeepEFTInputError, match="--param expects"):
        parse_assignments(["=3"], option="--param")


def test_load_toml_errors(tmp_path):
    with pytest.raises(DeepEFTInputError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("n = = 3\n")
    with pytest.raises(DeepEFTInputError, match="not valid TOML"):
        load_toml(bad)
    good = tmp_path / "good.toml"
    good.write_text('preset = "paper"\n[gaussian-moments]\nn_samples = 1000\n')
    assert load_toml(good) == {"preset": "paper", "gaussian-moments": {"n_samples": 1000}}


def test_config_diff():
    assert config_diff({"a": [1, 2], "b": 1}, {"a": [1, 2], "b": 1}) == []
    assert config_diff({"a": 1}, {"a": 2, "c": 3}) == ["a: stored 1, now 2", "c: stored '<absent>', now 3"]


def test_registered_experiments_are_valid():
    names = available_experiments()
    assert "gaussian-moments" in names
    for name in names:
        exp = get_experiment(name)
        assert "\n" not in exp.description.strip()
        for preset in ("quick", "paper"):
            p = resolve_params(exp, preset)
            assert isinstance(p.seed, int)
            assert len(exp.tasks(p)) >= 1


def test_get_experiment_suggests():
    with pytest.raises(DeepEFTInputError, match="Did you mean 'gaussian-moments'"):
        get_experiment("gausian-moments")
    with pytest.raises(DeepEFTInputError, match="Choose one of: quick, paper"):
        resolve_params("gaussian-moments", "fast")


def test_params_post_init_validation():
    with pytest.raises(DeepEFTInputError, match="Did you mean 'tanh'"):
        resolve_params("gaussian-moments", overrides={"activations": "relu,tnah"})
    with pytest.raises(DeepEFTInputError, match="repeated entries"):
        resolve_params("gaussian-moments", overrides={"variances": [1.0, 1.0]})


def _exp_class(**overrides):
    @dataclasses.dataclass(frozen=True)
    class Params:
        n: int = param(3, "n", min=1)
        seed: int = param(0, "seed")

    attrs = {"name": "tmp-exp", "description": "test", "Params": Params,
             "presets": {"quick": {}, "paper": {"n": 5}}}
    attrs.update(overrides)
    return type("TmpExp", (Experiment,), attrs)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"name": "Bad_Name"}, "kebab-case"),
        ({"description": "two\nlines"}, "one non-empty line"),
        ({"Params": dict}, "frozen dataclass"),
        ({"presets": {"quick": {}}}, "must define 'paper'"),
        ({"presets": {"quick": {"m": 1}, "paper": {}}}, "preset 'quick' is invalid"),
    ],
)
def test_register_rejects_malformed_experiments(overrides, fragment):
    with pytest.raises(TypeError, match=fragment):
        register(_exp_class(**overrides))


def test_register_requires_seed_field():
    @dataclasses.dataclass(frozen=True)
    class NoSeed:
        n: int = param(3, "n")

    with pytest.raises(TypeError, match="integer field `seed`"):
        register(_exp_class(Params=NoSeed))


def test_default_tasks_are_the_grid_in_row_major_order():
    exp = _exp_class()()
    exp.sweep = lambda p: {"a": [1, 2], "b": ["x", "y", "z"]}
    tasks = exp.tasks(None)
    assert tasks[:4] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}, {"a": 2, "b": "x"}]
    assert _exp_class()().tasks(None) == [{}]


def test_task_seeds_depend_only_on_seed_and_index():
    assert task_seed(0, 3) == task_seed(0, 3)
    seeds = {task_seed(7, i) for i in range(2000)}
    assert len(seeds) == 2000 and all(0 <= s < 2**64 for s in seeds)
    assert task_seed(0, 1) != task_seed(1, 0)
    a, b = TaskContext(5, 11), TaskContext(5, 11)
    assert np.array_equal(a.rng().standard_normal(4), b.rng().standard_normal(4))
    # the documented derivation: SeedSequence(seed).spawn(n)[index]
    ref = np.random.default_rng(np.random.SeedSequence(11).spawn(6)[5]).standard_normal(4)
    assert np.array_equal(a.rng().standard_normal(4), ref)
    import jax

    assert np.array_equal(jax.random.key_data(a.jax_key()), jax.random.key_data(b.jax_key()))
    assert not np.array_equal(jax.random.key_data(a.jax_key()), jax.random.key_data(TaskContext(6, 11).jax_key()))


def test_check_rules():
    c = zcheck("x", theory=1.0, simulation=1.3, stderr=0.1, max_z=5)
    assert c.z == pytest.approx(3.0) and c.passed and c.rule == "|z| < 5"
    assert not zcheck("x", 1.0, 1.6, 0.1).passed
    assert zcheck("x", 1.0, 1.0, 0.0).passed and not zcheck("x", 1.0, 1.1, 0.0).passed
    d = zcheck("x", 1.0, 1.1, 0.0).to_json()
    assert d["z"] is None and d["pass"] is False
    assert set(d) == {"name", "kind", "theory", "simulation", "stderr", "z", "pass", "rule"}
    assert close_check("y", 2.0, 2.0 + 1e-9, rtol=1e-6).passed
    assert not close_check("y", 2.0, 2.1, rtol=1e-6).passed
