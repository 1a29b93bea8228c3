"""deploy/run.sh: two app processes behind a real nginx, sticky sessions, a real browser through it, failover."""

import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
from browser_tools import ARTIFACTS, ROOT, TEACHER_KEY, assert_healthy, free_port, join_class, wait_until_idle

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
    page.goto(url + "/train?train_depth=1&train_width_1=16&train_iterations=5")  # routing is what is tested here, not training
    wait_until_idle(page)
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=/Run finished/", timeout=180_000)
    wait_until_idle(page)
    assert "trained · data: 8gaussians" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert_healthy(page, "deploy-train")
    page.close()


def test_the_board_shows_the_students_of_both_processes(deployment, browser):
    """Each browser context is a visitor with its own routing cookie: students land on either process, the teacher on one."""
    url, upstreams, _ = deployment
    students, landed = [], {}
    for k in range(10):  # until each process has a public student, and one private student joined
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        upstream = page.goto(url + "/train?train_depth=1&train_width_1=16&train_iterations=5").headers["x-cnf-lab-upstream"]
        name, private = f"Student {k}", len(students) == 1
        if not private and landed.get(upstream):
            context.close()
            continue
        join_class(page, name, private)
        students.append((name, private, upstream, page))
        if not private:
            landed[upstream] = name
        if set(landed) == set(upstreams) and any(p for _, p, _, _ in students):
            break
    assert set(landed) == set(upstreams), "ten visitors all landed on one process"
    teacher = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    teacher.goto(f"{url}/board?teacher={TEACHER_KEY}")
    wait_until_idle(teacher)
    public = {name for name, private, _, _ in students if not private}
    deadline = time.time() + 180
    while time.time() < deadline:
        shown = set(teacher.locator('[data-testid="stDataFrame"] [role=gridcell]').all_text_contents())
        if public <= shown:
            break
        teacher.wait_for_timeout(500)
    assert public <= shown and not any(name in shown for name, private, _, _ in students if private)
    assert_healthy(teacher, "deploy-board")
    teacher.get_by_role("textbox", name="Send the class a link").fill("/lecture?step=adjoint")
    teacher.get_by_role("button", name="Send to the class").click()
    for _, _, _, page in students:  # on both processes
        page.wait_for_selector("text=/Your teacher sent a link/", timeout=30_000)
    for _, _, _, page in students:
        page.context.close()
    teacher.context.close()


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
