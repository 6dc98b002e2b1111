"""Numbers quoted in README.md and docs/*.md are checked against the code, so they cannot go stale.

Fast: everything that follows from presets, the registry and the CLI (grid sizes, task counts, the
experiments table, the exit codes). Slow (``-m slow``): the quoted number of quick-preset checks, from
one `reproduce --preset quick` (~6 min on 2 cores) or, when $DEEPEFT_QUICK_SUMMARY names the summary.json of
a run made by the same code (CI runs `make run` first), from that run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepeft import cli
from deepeft.experiments import available_experiments, get_experiment, resolve_params

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
EXPERIMENTS_MD = (ROOT / "docs" / "experiments.md").read_text()
SGD_MD = (ROOT / "docs" / "sgd.md").read_text()
QUICK_CHECKS = re.compile(r"<!-- quick-checks -->(\d[\d ]*) checks<!-- /quick-checks -->")


def _int(text: str) -> int:
    return int(text.replace(" ", "").replace(",", ""))


def test_sgd_paper_grid_numbers():
    exp = get_experiment("sgd-phase-diagram")
    p = resolve_params(exp, "paper")
    points, members = len(p.temperatures) * len(p.inv_sigma_W), p.members
    m = re.search(r"(\d+) hyperparameter points × (\d+) teacher–student pairs × (\S+) steps", README)
    assert m, "README no longer quotes the SGD paper grid"
    assert (int(m[1]), int(m[2]), float(m[3])) == (points, members, p.steps)
    m = re.search(r"analyses all ([\d ]+) weight spectra", README)
    assert m and _int(m[1]) == points * members
    m = re.search(r"\((\d+) × (\d+) grid, (\d+) members, (\S+) steps, \|B\| = (\d+),\s+(\d+) tasks of (\d+) members", SGD_MD)
    assert m, "docs/sgd.md no longer describes the paper preset"
    assert (int(m[1]), int(m[2])) == (len(p.temperatures), len(p.inv_sigma_W))
    assert (int(m[3]), float(m[4]), int(m[5])) == (members, p.steps, p.batch_size)
    assert (int(m[6]), int(m[7])) == (len(exp.tasks(p)), p.members_per_task)
    assert f"{points} points" in SGD_MD


def test_experiments_table_lists_every_registered_experiment():
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|", EXPERIMENTS_MD, flags=re.M)
    assert sorted(rows) == sorted(available_experiments())


def test_exit_code_table_matches_the_cli():
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", EXPERIMENTS_MD, flags=re.M))
    codes = {cli.EXIT_OK, cli.EXIT_CHECKS, cli.EXIT_INPUT, cli.EXIT_UNAVAILABLE, cli.EXIT_TASK, cli.EXIT_CLUSTER,
             cli.EXIT_INTERRUPT}
    assert {int(k) for k in table} == codes
    for code in codes:
        assert re.search(rf"^  {code} ", cli.__doc__, flags=re.M), code
        assert f"{code} " in cli.app.info.help or code == cli.EXIT_OK


def test_quick_check_count_is_marked_for_the_slow_test():
    assert QUICK_CHECKS.search(EXPERIMENTS_MD), "docs/experiments.md must quote the count inside the marker"


def _quick_summary(tmp_path):
    """The summary of a complete `reproduce --preset quick` made by this code: the one named by
    $DEEPEFT_QUICK_SUMMARY (CI runs `make run` first and points here at results/quick/summary.json) when its
    source fingerprint matches, else a fresh run (~6 min on 2 cores)."""
    import json
    import os

    from _expt import quick_summary_problems
    from deepeft.experiments import reproduce

    given = os.environ.get("DEEPEFT_QUICK_SUMMARY")
    if given:
        s = json.loads(Path(given).read_text())
        problems = quick_summary_problems(s)
        assert not problems, f"$DEEPEFT_QUICK_SUMMARY={given} cannot be reused: {'; '.join(problems)}; rerun `make run`."
        return s
    return reproduce(tmp_path / "quick", preset="quick")


@pytest.mark.slow
def test_quick_check_count(tmp_path):
    s = _quick_summary(tmp_path)
    assert s["passed"], [e["name"] for e in s["experiments"] if not e["passed"]]
    quoted = _int(QUICK_CHECKS.search(EXPERIMENTS_MD)[1])
    assert s["n_checks"] == quoted, (
        f"`deepeft reproduce --preset quick` now makes {s['n_checks']} checks; docs/experiments.md says {quoted}: "
        "update the number inside <!-- quick-checks -->."
    )
