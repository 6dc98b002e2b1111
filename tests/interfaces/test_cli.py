"""End-to-end tests of the ``deepeft`` command line, every subcommand and its errors.

Each subcommand runs at least once as a real subprocess (exit codes, stdout/stderr); the full
matrix of error messages runs in-process through typer's CliRunner (same code, no 2 s start-up).
Sizes are tiny (4 tasks of 4000 samples); the distributed tests check that in-process, a
``--workers 2`` LocalCluster and an existing cluster (``--scheduler``) give bit-identical data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from deepeft.cli import app

TINY = ["--set", "activations=relu,tanh", "--set", "variances=0.5,2", "--set", "n_samples=4000"]
_SCRIPT = Path(sys.executable).with_name("deepeft")
_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "deepeft.cli"]
_HAS_CRIT = importlib.util.find_spec("deepeft.theory.criticality") is not None
_HAS_KERNEL = importlib.util.find_spec("deepeft.theory.kernel") is not None


def _env(extra=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONWARNINGS="ignore")
    env.update(extra or {})
    return env


def cli(*args, cwd=None, env=None, timeout=180):
    """Run ``deepeft ARGS`` as a subprocess."""
    return subprocess.run(
        [*_CMD, *map(str, args)], cwd=cwd, env=_env(env), capture_output=True, text=True, timeout=timeout
    )


def cli_many(calls, cwd, timeout=180):
    """Run several independent CLI invocations concurrently; results in order."""
    procs = [
        subprocess.Popen([*_CMD, *map(str, a)], cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for a in calls
    ]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, so, se))
    return out


def inproc(*args, cwd=None):
    """Invoke the CLI in this process (CliRunner): exit code, stdout and stderr as a subprocess would."""
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(old)


def load(d: Path) -> xr.Dataset:
    return xr.open_zarr(d / "data.zarr", zarr_format=3, consolidated=False).load()


def assert_bit_identical(a: Path, b: Path):
    da, db = load(a), load(b)
    xr.testing.assert_identical(da, db)
    for name in da.variables:
        assert da[name].values.tobytes() == db[name].values.tobytes(), name


def _inputs(tmp_path):
    X = np.array([[0.3, -1.2, 0.5], [1.0, 0.4, -0.7], [-0.2, 0.9, 1.1]])
    np.save(tmp_path / "X.npy", X)
    np.savetxt(tmp_path / "X.csv", X, delimiter=",", header="a,b,c", comments="")
    (tmp_path / "X.txt").write_text("1 2 3\n")
    (tmp_path / "bad.csv").write_text("1,2,x\n3,4,y\n")
    return X


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def ref(work):
    """An in-process reference run as a subprocess, with --quiet (stdout: only the report path)."""
    r = cli("run", "gaussian-moments", *TINY, "--out", work / "ref", "--quiet", cwd=work)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(work / "ref" / "report.html") and r.stderr == ""
    return work / "ref"


# ---------------------------------------------------------------------------------------------
# list, run, distributed runs, resume
# ---------------------------------------------------------------------------------------------
def test_help_and_list(work):
    lst = cli("list", cwd=work)
    assert lst.returncode == 0
    lines = lst.stdout.strip().splitlines()
    assert any(line.split()[0] == "gaussian-moments" and "quadrature" in line for line in lines)
    h = inproc("--help")
    assert h.exit_code == 0
    for cmd in ("list", "run", "reproduce", "report", "criticality", "kernel"):
        assert cmd in h.stdout
    assert "Exit codes" in h.stdout
    rows = json.loads(inproc("list", "--json").stdout)
    gm = next(r for r in rows if r["name"] == "gaussian-moments")
    assert {"quick", "paper"} <= set(gm["presets"]) and "n_samples" in [p["name"] for p in gm["params"]]


def test_run_outputs(ref):
    assert (ref / "data.zarr" / "zarr.json").is_file()
    assert sorted(p.name for p in ref.glob("*.png")) == ["moments.png", "zscores.png"]
    s = json.loads((ref / "summary.json").read_text())
    assert s["passed"] and s["n_checks"] == 12 and len(s["checks"]) == 12
    for c in s["checks"]:
        assert set(c) == {"name", "kind", "theory", "simulation", "stderr", "z", "pass", "rule"}
        assert isinstance(c["pass"], bool) and abs(c["z"]) < 5
    ds = load(ref)
    assert dict(ds.sizes) == {"activation": 2, "K": 2, "moment": 3}
    assert json.loads(ds.attrs["config"])["n_samples"] == 4000 and len(ds.attrs["task_seeds"]) == 4
    assert "deepeft_version" in ds.attrs
    html = (ref / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "gaussian-moments" in html


def test_workers_2_is_bit_identical(ref, work):
    r = cli("run", "gaussian-moments", *TINY, "--out", work / "w2", "--workers", 2, cwd=work)
    assert r.returncode == 0, r.stderr
    assert "LocalCluster (2 workers" in r.stderr and "report: " in r.stdout
    assert_bit_identical(ref, work / "w2")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", dashboard_address=None,
                      silence_logs=40) as c:
        yield c


def test_scheduler_is_bit_identical(ref, work, cluster):
    addr = cluster.scheduler_address
    assert addr.startswith("tcp://")
    r = cli("run", "gaussian-moments", *TINY, "--out", work / "sched", "--scheduler", addr, cwd=work)
    assert r.returncode == 0, r.stderr
    assert f"Dask scheduler {addr}" in r.stderr
    assert_bit_identical(ref, work / "sched")


def test_resume_and_configuration_refusal(ref, work):
    d = work / "resume"
    shutil.copytree(ref, d)
    ok = cli("run", "gaussian-moments", *TINY, "--out", d, "--resume", cwd=work)
    assert ok.returncode == 0, ok.stderr
    assert "resuming, 4/4 tasks already finished" in ok.stderr
    assert json.loads((d / "summary.json").read_text())["timing"]["tasks_run"] == 0
    assert_bit_identical(ref, d)
    bad = inproc("run", "gaussian-moments", *TINY, "--set", "n_samples=5000", "--out", d, "--resume")
    assert bad.exit_code == 2 and "n_samples: stored 4000, now 5000" in bad.stderr and "--overwrite" in bad.stderr
    bad2 = inproc("run", "gaussian-moments", *TINY, "--set", "seed=1", "--out", d)
    assert bad2.exit_code == 2 and "seed: stored 0, now 1" in bad2.stderr
    other = inproc("run", "gaussian-moments", "--preset", "paper", "--out", d, "--resume")
    assert other.exit_code == 2 and "different configuration" in other.stderr
    assert_bit_identical(ref, d)  # refusals touched nothing


def test_failed_checks_exit_1(work):
    r = inproc("run", "gaussian-moments", *TINY, "--set", "max_z=1", "--out", work / "strict")
    s = json.loads((work / "strict" / "summary.json").read_text())
    assert s["n_failed"] > 0  # deterministic: fixed seed, 12 checks at |z| < 1
    assert r.exit_code == 1 and "checks failed" in r.stderr and "report: " in r.stdout


def test_config_file_sets_parameters(ref, work, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        'preset = "quick"\n[gaussian-moments]\nactivations = ["relu", "tanh"]\nvariances = [0.5, 2.0]\n'
        "n_samples = 4000\n"
    )
    r = inproc("run", "gaussian-moments", "--config", cfg, "--out", work / "cfg", "-q")
    assert r.exit_code == 0, r.stderr
    assert_bit_identical(ref, work / "cfg")


def test_default_output_folder(tmp_path):
    r = inproc("run", "gaussian-moments", *TINY, "-q", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(Path("results") / "gaussian-moments-quick" / "report.html")
    assert (tmp_path / "results" / "gaussian-moments-quick" / "summary.json").is_file()


# ---------------------------------------------------------------------------------------------
# reproduce and report
# ---------------------------------------------------------------------------------------------
def test_reproduce_and_report(ref, work):
    d = work / "repro"
    sets = [x for s in TINY[1::2] for x in ("--set", f"gaussian-moments.{s}")]
    r = cli("reproduce", "--only", "gaussian-moments", *sets, "--out", d, cwd=work)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"report: {d / 'report.html'}"
    assert "gaussian-moments: 12/12 predictions pass" in r.stderr
    s = json.loads((d / "summary.json").read_text())
    assert s["passed"] and [e["name"] for e in s["experiments"]] == ["gaussian-moments"]
    assert len(s["checks"]) == 12 and all(c["experiment"] == "gaussian-moments" for c in s["checks"])
    assert (d / "gaussian-moments" / "data.zarr").is_dir() and (d / "report.html").is_file()
    assert_bit_identical(ref, d / "gaussian-moments")

    (d / "report.html").unlink()
    rep = cli("report", d, cwd=work)
    assert rep.returncode == 0 and (d / "report.html").is_file() and rep.stdout.strip().endswith("report.html")
    again = inproc("reproduce", "--only", "gaussian-moments", *sets, "--out", d, "--resume", "-q")
    assert again.exit_code == 0, again.stderr
    assert json.loads((d / "gaussian-moments" / "summary.json").read_text())["timing"]["tasks_resumed"] == 4


# ---------------------------------------------------------------------------------------------
# errors: one real process per subcommand, the full matrix in-process
# ---------------------------------------------------------------------------------------------
def test_errors_as_subprocesses(tmp_path):
    """Exit codes and messages on stderr, no tracebacks, JSON errors with --json."""
    _inputs(tmp_path)
    calls = [
        (["run", "gaussian-moment"], 2, "Did you mean 'gaussian-moments'"),
        (["reproduce", "--set", "n_samples=3"], 2, "EXPERIMENT.KEY=VALUE"),
        (["report", tmp_path], 2, "has no summary.json"),
        (["criticality", "tanhh", "--json"], 2, "Did you mean 'tanh'"),
        (["kernel", tmp_path / "missing.npy"], 2, "does not exist"),
    ]
    if not _HAS_CRIT:
        calls.append((["criticality", "tanh", "--json"], 3, "deepeft.theory.criticality"))
    if not _HAS_KERNEL:
        calls.append((["kernel", tmp_path / "X.npy", "--json"], 3, "deepeft.theory.kernel"))
    results = cli_many([c for c, _, _ in calls], cwd=tmp_path)
    for (args, code, fragment), r in zip(calls, results):
        assert r.returncode == code, (args, r.stderr)
        assert fragment in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
        if "--json" in args:
            assert json.loads(r.stdout)["error"]["exit_code"] == code
    assert not (tmp_path / "results").exists()  # nothing ran


def test_input_error_messages(tmp_path):
    _inputs(tmp_path)
    cfg_bad = tmp_path / "bad.toml"
    cfg_bad.write_text("[gaussian-moments]\nn_sample = 10\n")
    cfg_table = tmp_path / "table.toml"
    cfg_table.write_text("[gausian-moments]\nn_samples = 10\n")
    cfg_flat = tmp_path / "flat.toml"
    cfg_flat.write_text("n_samples = 10\n")
    cases = [
        (["run", "gaussian-moments", "--set", "n_sample=3"], "Allowed parameters: activations, variances"),
        (["run", "gaussian-moments", "--set", "n_samples=abc"], "'n_samples' must be int"),
        (["run", "gaussian-moments", "--set", "n_samples"], "--set expects KEY=VALUE"),
        (["run", "gaussian-moments", "--set", "activations=relu,tnah"], "Did you mean 'tanh'"),
        (["run", "gaussian-moments", "--preset", "fast"], "Choose one of: quick, paper"),
        (["run", "gaussian-moments", "--workers", 2, "--scheduler", "tcp://127.0.0.1:1"], "not both"),
        (["run", "gaussian-moments", "--config", cfg_bad], "unknown parameter 'n_sample' (from --config file)"),
        (["run", "gaussian-moments", "--config", cfg_table], "table [gausian-moments] is not an experiment"),
        (["run", "gaussian-moments", "--config", tmp_path / "none.toml"], "does not exist"),
        (["reproduce", "--config", cfg_flat], "needs parameters inside [experiment-name] tables"),
        (["reproduce", "--set", "gaussian-moments.n_sample=3"], "Did you mean 'n_samples'"),
        (["reproduce", "--only", "nope"], "unknown experiment 'nope'"),
        (["criticality", "leaky_relu", "--param", "slop=0.2"], "unknown parameter(s) ['slop']"),
        (["kernel", tmp_path / "X.txt"], "use a .npy or .csv file"),
        (["kernel", tmp_path / "bad.csv"], "holds entries that are not numbers"),
        (["kernel", tmp_path / "X.npy", "--C-W", "two"], "--C-W must be a number"),
        (["kernel", tmp_path / "X.npy", "--activation", "rleu"], "Did you mean 'relu'"),
        (["kernel", tmp_path / "X.npy", "--depth", 3, "--C-W", "1,2"], "sequence of length L = 3"),
    ]
    for args, fragment in cases:
        r = inproc(*args, cwd=tmp_path)
        assert r.exit_code == 2, (args, r.stderr)
        assert fragment in r.stderr, (args, r.stderr)
    r = inproc("run", cwd=tmp_path)  # missing NAME: a click usage error
    assert r.exit_code == 2 and "Missing argument" in r.stderr
    assert not (tmp_path / "results").exists()  # nothing ran


# ---------------------------------------------------------------------------------------------
# quick answers against the Python API (skipped until the theory modules land)
# ---------------------------------------------------------------------------------------------
def test_criticality_json_matches_python_api(tmp_path):
    mod = pytest.importorskip("deepeft.theory.criticality")
    from deepeft import activation
    from deepeft._cli_common import jsonable

    r = cli("criticality", "relu", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["command"] == "criticality" and out["input"] == {"activation": "relu", "params": {}}
    assert out["result"] == json.loads(json.dumps(jsonable(mod.criticality(activation("relu")))))
    txt = inproc("criticality", "leaky_relu", "--param", "slope=0.2")
    assert txt.exit_code == 0 and "leaky_relu" in txt.stdout and "slope" in txt.stdout


def test_kernel_json_matches_python_api(tmp_path):
    mod = pytest.importorskip("deepeft.theory.kernel")
    from deepeft import MLP

    X = _inputs(tmp_path)
    net = MLP(input_dim=3, widths=[1000] * 2, activation="tanh", C_b=0.1, C_W=1.5)
    args = ["--activation", "tanh", "--depth", 3, "--C-b", 0.1, "--C-W", 1.5, "--json"]
    npy = cli("kernel", tmp_path / "X.npy", *args, "--save", tmp_path / "K.npy", cwd=tmp_path)
    assert npy.returncode == 0, npy.stderr
    csv = inproc("kernel", tmp_path / "X.csv", *args)
    ntk = inproc("kernel", tmp_path / "X.npy", *args, "--ntk")
    txt = inproc("kernel", tmp_path / "X.npy", "--activation", "tanh", "--depth", 3)
    assert csv.exit_code == 0 and ntk.exit_code == 0 and txt.exit_code == 0, (csv.stderr, ntk.stderr, txt.stderr)
    assert "layer 3:" in txt.stdout
    a, b, c = (json.loads(r) for r in (npy.stdout, csv.stdout, ntk.stdout))
    expected = np.asarray(mod.kernel(net, X))
    assert a["quantity"] == "kernel" and a["equation"] == "(4.118)" and a["shape"] == [3, 3, 3]
    assert a["inputs"] == {"path": str(tmp_path / "X.npy"), "N": 3, "n0": 3} and a["network"]["L"] == 3
    np.testing.assert_allclose(np.array(a["value"]), expected, rtol=1e-12)
    np.testing.assert_array_equal(np.load(tmp_path / "K.npy"), np.array(a["value"]))
    np.testing.assert_allclose(np.array(b["value"]), expected, rtol=1e-12)  # .csv with a header line
    assert c["quantity"] == "frozen_ntk" and c["equation"] == "(9.5)"
    np.testing.assert_allclose(np.array(c["value"]), np.asarray(mod.frozen_ntk(net, X)), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Ctrl-C: every interrupt exits 130 and leaves a store that resumes to the uninterrupted result
# ---------------------------------------------------------------------------------------------
def _interrupt_after_start(args, cwd, delay_s, env):
    """Start ``deepeft ARGS``, wait for its first info line (run started), sleep ``delay_s``, then send SIGINT
    to its whole process group, as Ctrl-C in a terminal does (Dask workers get it too)."""
    import signal
    import time

    p = subprocess.Popen([*_CMD, *map(str, args)], cwd=cwd, env=_env(env), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    first = p.stderr.readline()
    time.sleep(delay_s)
    os.killpg(p.pid, signal.SIGINT)
    so, se = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, so, first + se)


def test_sigint_stress_exits_130_and_resumes(ref, work):
    """Interrupts at random moments, in-process and with --workers: exit 130 (never a crash at
    interpreter shutdown), one line on stderr, and the store resumes to data bit-identical to a run
    that was never interrupted."""
    import concurrent.futures as cf

    rng = np.random.default_rng(11)
    runs = [([], d) for d in rng.uniform(0.0, 3.5, size=3)] + [(["--workers", 1], rng.uniform(0.0, 2.0))]
    dirs = [work / f"sigint{i}" for i in range(len(runs))]
    with cf.ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(
            lambda i: _interrupt_after_start(["run", "gaussian-moments", *TINY, *runs[i][0], "--out", dirs[i]], work,
                                             runs[i][1], {"DEEPEFT_TASK_DELAY": "1"}),
            range(len(runs))))
    finished = []
    for (extra, delay), d, r in zip(runs, dirs, results):
        assert r.returncode == 130, (extra, delay, r.returncode, r.stderr[-2000:])
        assert "interrupted; finished tasks are saved" in r.stderr and "Traceback" not in r.stderr, r.stderr
        finished.append(len(list((d / "tasks").glob("task-*.npz"))) if (d / "tasks").is_dir() else 0)
    for d, n_done in zip(dirs, finished):
        r = inproc("run", "gaussian-moments", *TINY, "--out", d, "--resume", "-q")
        assert r.exit_code == 0, r.stderr
        timing = json.loads((d / "summary.json").read_text())["timing"]
        assert timing["tasks_resumed"] == n_done and timing["tasks_run"] == 4 - n_done
        assert_bit_identical(ref, d)


def test_unwritable_outputs_exit_2_before_any_work(tmp_path):
    """--out / --save that name a file, sit under a file, or lie on a read-only mount (/proc: unwritable
    even for root, which ignores permission bits) → exit 2 with one line, before any work."""
    _inputs(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "adir").mkdir()
    ro = Path("/proc") / "deepeft-out"
    calls = [
        (["run", "gaussian-moments", *TINY, "--out", afile], "is an existing file, not a folder"),
        (["run", "gaussian-moments", *TINY, "--out", afile / "sub"], "is a file, not a folder"),
        (["run", "gaussian-moments", *TINY, "--out", ro], "cannot write in '/proc'"),
        (["reproduce", "--out", afile], "is an existing file, not a folder"),
        (["reproduce", "--out", ro / "x"], "cannot write in '/proc'"),
        (["kernel", tmp_path / "X.npy", "--save", tmp_path / "adir"], "is a folder; give a file name"),
        (["kernel", tmp_path / "X.npy", "--save", tmp_path / "K"], "ending in .npy"),
        (["kernel", tmp_path / "X.npy", "--save", afile / "K.npy"], "is not an existing folder"),
        (["kernel", tmp_path / "X.npy", "--save", ro / "K.npy"], "is not an existing folder"),
        (["kernel", tmp_path / "X.npy", "--save", "/proc/K.npy"], "cannot write in '/proc'"),
    ]
    procs = cli_many([c for c, _ in calls[2:5]], cwd=tmp_path)  # a few as real processes, the rest in-process
    results = [inproc(*c, cwd=tmp_path) for c, _ in calls[:2]] + procs + [inproc(*c, cwd=tmp_path) for c, _ in calls[5:]]
    for (args, fragment), r in zip(calls, results):
        code = getattr(r, "returncode", getattr(r, "exit_code", None))
        assert code == 2, (args, code, r.stderr[-1500:])
        assert fragment in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
    assert not (tmp_path / "results").exists() and not (tmp_path / "K.npy").exists()
    assert sorted(p.name for p in (tmp_path / "adir").iterdir()) == []


def test_bad_scheduler_address_fails_fast_with_exit_5(tmp_path):
    import time

    t0 = time.monotonic()
    bad, refused = cli_many([["run", "gaussian-moments", *TINY, "--scheduler", "notaurl"],
                             ["run", "gaussian-moments", *TINY, "--scheduler", "tcp://127.0.0.1:1",
                              "--scheduler-timeout", 2]], cwd=tmp_path)
    elapsed = time.monotonic() - t0
    assert bad.returncode == 5 and "'notaurl' is not a Dask scheduler address" in bad.stderr, bad.stderr
    assert refused.returncode == 5 and "'tcp://127.0.0.1:1' within 2 s" in refused.stderr, refused.stderr
    for r in (bad, refused):
        assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert elapsed < 30, elapsed  # was > 32 s: Dask's default 30 s connect timeout on a refused port
    assert not (tmp_path / "results").exists()
    r = inproc("reproduce", "--scheduler", "tcp://host:99999", cwd=tmp_path)
    assert r.exit_code == 5 and "port 1-65535" in r.stderr


def test_input_files_say_what_they_should_contain(tmp_path):
    np.save(tmp_path / "flat.npy", np.array([0.3, -1.2, 0.5, 1.0]))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    (tmp_path / "text.npy").write_text("1,2,3\n4,5,6\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    (tmp_path / "one.csv").write_text("1,2,3\n")
    should = "it should contain a matrix X of shape (N, n0)"
    cases = [
        ("flat.npy", "shape (4,) (for one input of dimension 4, save X[None, :] of shape (1, 4))"),
        ("empty.npy", "empty array of shape (0, 3)"),
        ("cube.npy", "shape (2, 2, 2)"),
        ("text.npy", "is not a NumPy .npy file (a text file? name it .csv)"),
        ("empty.csv", "is empty"),
        ("ragged.csv", "rows have different numbers of columns (2, 3)"),
    ]
    (proc,) = cli_many([["kernel", tmp_path / "flat.npy", "--json"]], cwd=tmp_path)
    assert proc.returncode == 2 and cases[0][1] in proc.stderr and json.loads(proc.stdout)["error"]["exit_code"] == 2
    for name, fragment in cases:
        r = inproc("kernel", tmp_path / name, cwd=tmp_path)
        assert r.exit_code == 2, (name, r.stderr)
        assert fragment in r.stderr and should in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
    ok = inproc("kernel", tmp_path / "one.csv", "--json", cwd=tmp_path)  # one CSV row = one input
    assert ok.exit_code == 0 and json.loads(ok.stdout)["inputs"]["N"] == 1, ok.stderr


def test_kernel_cli_defaults_to_criticality_and_warns_off_critical(tmp_path):
    _inputs(tmp_path)
    off, crit = cli_many([["kernel", tmp_path / "X.npy", "--depth", 60, "--C-W", 1, "--json"],
                          ["kernel", tmp_path / "X.npy", "--depth", 60, "--json"]], cwd=tmp_path)
    assert off.returncode == 0 and crit.returncode == 0, (off.stderr, crit.stderr)
    out = json.loads(off.stdout)
    assert len(out["warnings"]) == 1 and "collapses exponentially" in out["warnings"][0]
    assert off.stderr.count("warning: kernel: ") == 1
    assert "critical initialization C_b = 0, C_W = 2" in crit.stderr and "warning" not in crit.stderr.lower()
    c = json.loads(crit.stdout)
    assert c["network"]["C_W"] == [2.0] * 60 and c["warnings"] == []
    sig = inproc("kernel", tmp_path / "X.npy", "--activation", "sigmoid", "--depth", 3)
    assert sig.exit_code == 0 and "WARNING: sigmoid has no critical initialization" in sig.stderr


# ---------------------------------------------------------------------------------------------
# readable output: criticality headline, --version, list --json limits, progress bars, n_networks
# ---------------------------------------------------------------------------------------------
def test_readable_output(tmp_path):
    import deepeft

    crit, ver = cli_many([["criticality", "tanh"], ["--version"]], cwd=tmp_path)
    assert crit.returncode == 0 and crit.stdout.splitlines()[0] == "critical: C_b = 0, C_W = 1, universality class K* = 0"
    assert "details" in crit.stdout and "p_parallel" in crit.stdout
    assert ver.returncode == 0 and ver.stdout.strip() == f"deepeft {deepeft.__version__}"
    relu = inproc("criticality", "relu").stdout.splitlines()[0]
    assert relu.startswith("critical: C_b = 0, C_W = 2, universality class scale-invariant")
    assert inproc("criticality", "sigmoid").stdout.startswith("not critical: sigmoid has no physical critical")
    rows = {r["name"]: {p["name"]: p for p in r["params"]} for r in json.loads(inproc("list", "--json").stdout)}
    nn = rows["kernel-vs-ensemble"]["n_networks"]
    assert nn["min"] == 2 and nn["max"] is None and nn["choices"] is None and nn["type"] == "int"
    assert any(p["choices"] for r in rows.values() for p in r.values())  # e.g. a method with allowed values


def test_n_networks_minimum_is_stated_once():
    import deepeft as de

    net = de.MLP(input_dim=2, widths=[4], activation="tanh")
    X = np.ones((1, 2))
    for bad in (0, 1, -3):
        with pytest.raises(de.DeepEFTInputError, match=r"n_networks must be (an integer )?>= 2"):
            de.sample_ensemble(net, X, bad)
    with pytest.raises(de.DeepEFTInputError, match=r"n_networks must be (an integer )?>= 2"):
        de.sample_ensemble(net, X, 2.5)


_BAR_SCRIPT = """
import sys, numpy as np, deepeft as de
X = np.random.default_rng(0).normal(size=(3, 10))
net = de.MLP(input_dim=10, widths=[128] * 4, activation="tanh", C_b=0.0, C_W=1.0)
de.sample_ensemble(net, X, n_networks=int(sys.argv[1]), seed=0, chunk_size=256, progress={progress})
"""


def test_ensemble_progress_bar_on_a_terminal_or_when_asked(tmp_path):
    """The README example shows a tqdm bar when stderr is a terminal (runs over 1 s) or progress=True; none in
    logs/pipes by default, and none inside experiment tasks (DEEPEFT_PROGRESS=0)."""
    import fcntl
    import pty
    import struct
    import termios

    def run(progress, n, tty, extra=None):
        code = _BAR_SCRIPT.format(progress=progress)
        env = {k: v for k, v in _env(extra).items() if k != "DEEPEFT_PROGRESS" or extra}
        if not tty:
            r = subprocess.run([sys.executable, "-c", code, str(n)], env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            return r.stderr
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        p = subprocess.Popen([sys.executable, "-c", code, str(n)], env=env, stderr=slave, stdout=subprocess.DEVNULL)
        os.close(slave)
        chunks = []
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        assert p.wait(timeout=300) == 0
        os.close(master)
        return b"".join(chunks).decode(errors="replace")

    shown = run(None, 2048, tty=True)
    assert "sample_ensemble:" in shown and "2048/2048" in shown
    assert "sample_ensemble:" in run(True, 256, tty=False)
    assert "sample_ensemble:" not in run(None, 256, tty=False)
    assert "sample_ensemble:" not in run(None, 2048, tty=True, extra={"DEEPEFT_PROGRESS": "0"})
