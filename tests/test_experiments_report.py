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
import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from deepeft.experiments import reproduce, run_experiment

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium; .ci/run does it)"
)

TINY = {"activations": "relu,tanh", "variances": "0.5,2", "n_samples": 4000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    port = _free_port()
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
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
    height = await call("Runtime.evaluate", expression="document.documentElement.scrollHeight", returnByValue=True)
    shot = await call("Page.captureScreenshot", format="png")
    ws.close()
    return {
        "images": json.loads(images["result"]["value"]),
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
    return res


def test_run_report_renders(browser, tmp_path):
    out = run_experiment("gaussian-moments", tmp_path / "run", overrides=TINY)
    res = _check_page(browser, out.out_dir / "report.html", n_images=len(out.summary["figures"]))
    print(f"report.html: {len(res['images'])} images, page height {res['height']} px")


def test_reproduce_report_renders(browser, tmp_path):
    s = reproduce(tmp_path / "repro", names=["gaussian-moments"], overrides={"gaussian-moments": TINY})
    assert s["passed"]
    _check_page(browser, tmp_path / "repro" / "report.html", n_images=2)
