"""deploy/run.sh: two app processes behind a real nginx, sticky sessions, a real browser through it, failover."""

import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
from browser_tools import ARTIFACTS, ROOT, assert_healthy, free_port, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (scripts/test.sh installs nginx-light)")]


def get(url: str, cookie: str | None = None):
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, response.read()


@pytest.fixture(scope="module")
def deployment():
    port, first = free_port(), free_port()
    while abs(first - port) < 3:
        first = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "deploy-run.log", "w")
    process = subprocess.Popen(
        ["bash", "deploy/run.sh", "--processes", "2", "--port", str(port), "--first-app-port", str(first)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if get(url + "/_stcore/health")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or process.poll() is not None:
            os.killpg(process.pid, signal.SIGTERM)
            pytest.fail("deploy/run.sh did not serve: " + (ARTIFACTS / "deploy-run.log").read_text())
        time.sleep(0.5)
    yield url, [f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}"], process
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    log.close()


def route_cookie(url: str) -> tuple[str, str]:
    """A first visit: the cookie nginx hands out and the process that served it."""
    _, headers, _ = get(url + "/")
    cookie = headers["Set-Cookie"].split(";")[0]
    assert cookie.startswith("cnflab_route=")
    return cookie, headers["X-CNF-Lab-Upstream"]


def test_a_visitor_stays_on_one_process_and_visitors_spread_over_both(deployment):
    url, upstreams, _ = deployment
    seen = set()
    for _ in range(12):
        cookie, first_upstream = route_cookie(url)
        served_by = {get(url + path, cookie)[1]["X-CNF-Lab-Upstream"] for path in ("/_stcore/health", "/", "/train", "/_stcore/health")}
        assert served_by == {first_upstream}  # sticky
        _, headers, _ = get(url + "/", cookie)
        assert headers.get("Set-Cookie") is None  # a visitor with a cookie keeps it
        seen.add(first_upstream)
    assert seen == set(upstreams)  # 12 visitors on 2 processes: both serve


def test_a_real_browser_trains_through_the_proxy(deployment, browser):
    url, _, _ = deployment
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(url + "/train?train_depth=1&train_width=16&train_iterations=5")  # routing is what is tested here, not training
    wait_until_idle(page)
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=/Run finished/", timeout=180_000)
    wait_until_idle(page)
    assert "trained · data: 8gaussians" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert_healthy(page, "deploy-train")
    page.close()


def test_when_a_process_goes_away_its_visitors_move_and_it_comes_back(deployment):
    url, upstreams, _ = deployment
    port = upstreams[1].split(":")[1]
    pattern = f"streamlit run app.py .*--server.port {port}"
    killed = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert killed, "the second app process is not running"
    for pid in killed:
        os.kill(int(pid), signal.SIGKILL)
    for _ in range(8):  # new visitors, whichever process their key hashes to, are all served
        cookie, _ = route_cookie(url)
        assert get(url + "/_stcore/health", cookie)[0] == 200
    deadline = time.time() + 90  # run.sh starts the process again
    while True:
        try:
            if get(f"http://{upstreams[1]}/_stcore/health")[0] == 200:
                break
        except OSError:
            pass
        assert time.time() < deadline, "the app process was not started again"
        time.sleep(0.5)
    restarted = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert restarted and not set(restarted) & set(killed)
