"""report.html renders in headless Chromium: non-blank screenshot, every image loads, no console
errors, and no request leaves the page (it is self-contained and opens offline).

Chromium is driven over the DevTools protocol (tornado's websocket client, a dask dependency).
Skipped with a reason when the Debian package `chromium` is not installed (.ci/run installs it).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from deepeft.experiments import reproduce, run_experiment
from deepeft.experiments.report import COLUMNS, column_violations

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("DEEPEFT_REQUIRE_CHROMIUM") == "1"  # .ci/run sets it: there, a missing browser fails


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("DEEPEFT_REQUIRE_CHROMIUM=1 but chromium is not installed (apt-get install -y chromium)")
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium; .ci/run does it)")
    return CHROMIUM

TINY = {"activations": "relu,tanh", "variances": "0.5,2", "n_samples": 4000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory, chromium):
    port = _free_port()
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", "--remote-allow-origins=*", "--window-size=1200,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "chromium exited at start-up"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.2)
        yield pages[0]["webSocketDebuggerUrl"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _inspect(ws_url: str, url: str) -> dict:
    """Load ``url``; collect console/log/exception events, requests, image states and a screenshot."""
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(ws_url, max_message_size=256 * 1024 * 1024)
    counter, events = [0], []

    async def call(method, **params):
        counter[0] += 1
        my_id = counter[0]
        await ws.write_message(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 60))
            if msg.get("id") == my_id:
                assert "error" not in msg, msg
                return msg["result"]
            events.append(msg)

    for domain in ("Page", "Runtime", "Log", "Network"):
        await call(f"{domain}.enable")
    await call("Page.navigate", url=url)
    deadline = time.monotonic() + 60
    while not any(e.get("method") == "Page.loadEventFired" for e in events):
        assert time.monotonic() < deadline, "page did not finish loading"
        events.append(json.loads(await asyncio.wait_for(ws.read_message(), 60)))
    images = await call(
        "Runtime.evaluate",
        expression="JSON.stringify(Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, "
        "w: i.naturalWidth, h: i.naturalHeight})))",
        returnByValue=True,
    )
    heads = await call(
        "Runtime.evaluate",
        expression="JSON.stringify(Array.from(document.querySelectorAll('table.checks thead')).map(h => "
        "Array.from(h.querySelectorAll('th')).map(t => t.textContent)))",
        returnByValue=True,
    )
    height = await call("Runtime.evaluate", expression="document.documentElement.scrollHeight", returnByValue=True)
    shot = await call("Page.captureScreenshot", format="png")
    ws.close()
    return {
        "images": json.loads(images["result"]["value"]),
        "check_heads": json.loads(heads["result"]["value"]),
        "height": height["result"]["value"],
        "png": base64.b64decode(shot["data"]),
        "events": events,
    }


def _check_page(browser, report_path, n_images):
    res = asyncio.run(_inspect(browser, report_path.resolve().as_uri()))
    ev = res["events"]
    errors = [e for e in ev if e.get("method") == "Runtime.exceptionThrown"]
    errors += [e for e in ev if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "warning")]
    errors += [e for e in ev if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning")]
    errors += [e for e in ev if e.get("method") == "Network.loadingFailed"]
    assert not errors, errors
    urls = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
    assert all(u.startswith(("file:", "data:")) for u in urls), urls  # nothing from the network
    imgs = res["images"]
    assert len(imgs) == n_images, imgs
    assert all(i["complete"] and i["w"] > 100 and i["h"] > 100 for i in imgs), imgs
    from PIL import Image

    px = np.asarray(Image.open(io.BytesIO(res["png"])).convert("L"), dtype=float)
    assert px.shape[0] > 500 and px.shape[1] > 800
    assert px.std() > 10 and (np.abs(px - np.median(px)) > 30).mean() > 0.01  # not blank
    assert res["height"] > 900
    heads = res["check_heads"]  # every check table, in every experiment, has the same columns in the same order
    assert heads and all(h == list(COLUMNS) for h in heads), heads
    return res


def test_run_report_renders(browser, tmp_path):
    out = run_experiment("gaussian-moments", tmp_path / "run", overrides=TINY)
    res = _check_page(browser, out.out_dir / "report.html", n_images=len(out.summary["figures"]))
    print(f"report.html: {len(res['images'])} images, page height {res['height']} px")


def test_reproduce_report_renders(browser, tmp_path):
    s = reproduce(tmp_path / "repro", names=["gaussian-moments"], overrides={"gaussian-moments": TINY})
    assert s["passed"] and column_violations(s["checks"]) == []
    _check_page(browser, tmp_path / "repro" / "report.html", n_images=2)


def test_large_figures_are_linked_and_still_load(browser, tmp_path, monkeypatch):
    from deepeft.experiments import report

    s = reproduce(tmp_path / "repro", names=["gaussian-moments"], overrides={"gaussian-moments": TINY})
    monkeypatch.setattr(report, "INLINE_MAX_BYTES", 0)
    path = report.write_report(tmp_path / "repro")
    html = path.read_text()
    assert "data:image/png" not in html and 'src="gaussian-moments/moments.png"' in html
    _check_page(browser, path, n_images=len(s["experiments"]) * 2)


# ---------------------------------------------------------------------------------------------
# columns, rounding, folding (no browser needed)
# ---------------------------------------------------------------------------------------------
def test_columns_keep_their_meaning_and_numbers_are_rounded():
    from deepeft.experiments import _sgd_common as sc
    from deepeft.experiments.checks import close_check, zcheck
    from deepeft.experiments.report import _checks_table, _theory_text, _z_text

    x = np.random.default_rng(0).normal(1.0, 0.1, 50)
    checks = [
        zcheck("z", 1.0, 1.2, 0.1),
        close_check("c", 2.0, 2.0 + 1e-9, rtol=1e-6),
        sc.ratio_check("r", 200.0, 10.0, 1.0, 0.1, 100.0, "ratio"),
        sc.greater_check("g", 1.0, 0.1, 0.5, 0.1, min_z=2.0, what="d"),
        sc.transition_check("t", np.array([0.25, 0.5, 1.0, 2.0]), np.tile([1e-4, 1e-4, 1e-2, 1e-2], (8, 1)) * x[:8, None],
                            0.3, 2.0),
        sc.factor_check("f", lambda idx: 1.5 * x[idx].mean() / x[idx].mean(), 50, 2.0, "r"),
    ]
    rows = [c.to_json() for c in checks]
    assert column_violations(rows) == []
    for c in rows[2:5]:  # thresholds and windows are rules, not theory values
        assert c["theory"] is None and c["z"] is None, c
    assert "≥ 100" in rows[2]["rule"] and "here z = " in rows[2]["rule"] and "here z = 3.54" in rows[3]["rule"]
    bad = dict(rows[0], z=3.0)  # z that is not (measurement − theory)/stderr
    assert column_violations([bad, dict(rows[0], kind="guess")]) and not column_violations([dict(rows[0], kind="finding")])
    assert _theory_text({"theory": 5.55e-17, "simulation": 0.3, "stderr": 0.01}) == "0"
    assert _theory_text({"theory": 1e-18, "simulation": 1.1e-18, "stderr": 1e-20}) == "1e-18"  # small but not round-off
    assert _z_text({"z": -2.3467}) == "-2.35"
    html = _checks_table([dict(rows[0], **{"pass": True}), dict(rows[0], name="bad", **{"pass": False})])
    assert html.index("<td>bad</td>") < html.index("<td>z</td>")  # failed first
    assert "<td>prediction</td>" in html and "1.2 ± 0.1" in html


def test_long_check_tables_are_folded(tmp_path):
    from deepeft.experiments.report import FOLD_ROWS, render_report

    out = run_experiment("gaussian-moments", tmp_path / "run", overrides=TINY)
    html = render_report(out.out_dir)
    n = out.summary["n_checks"]
    assert (f"<details><summary>All {n} checks" in html) == (n > FOLD_ROWS)
    assert "the same in every experiment" in html
