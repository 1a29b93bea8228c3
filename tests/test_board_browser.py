"""The class board in real headless Chromium: six students with names (two private) and a teacher, on one server.

The board lists the four public runs while they train and their test NLL
when they end; private runs never appear, by any address; a run put on the
projector shows its density; the teacher's link reaches every student's page
and its button opens it; without the key the board's address shows nothing
of the class. The same through nginx with two app processes is in
`test_deploy.py`.
"""

import re

import pytest
from browser_tools import FIGURE_BOTTOMS, TEACHER_KEY, assert_healthy, figures_drawn, join_class, presented, running_app, wait_until_idle

from cnf_core import datasets
from cnf_core.lecture.deck import STEPS

pytestmark = pytest.mark.browser
PUBLIC, PRIVATE = ["Ana", "Bea", "Caio", "Dani"], ["Eli", "Fay"]
# small runs that last long enough for the board to show them training (an iteration budget of a small network ends in
# seconds now that the training step is compiled): the board, not training, is tested here
TRAIN = "/train?train_depth=1&train_width_1=16&train_budget_kind=Seconds&train_seconds=20"


@pytest.fixture(scope="module")
def class_server():
    """A server of its own, so the board holds this class only."""
    with running_app(log_name="board-server.log") as (url, _):
        yield url


def board_cells(page) -> list[str]:
    return page.locator('[data-testid="stDataFrame"] [role=gridcell]').all_text_contents()


def board_rows(page) -> dict[str, list[str]]:
    """The board's rows by student: each row's cells (a row starts with a student's name)."""
    headers = page.locator('[data-testid="stDataFrame"] [role=columnheader]').all_text_contents()
    cells = board_cells(page)
    width = len(headers)
    rows = [cells[i:i + width] for i in range(0, len(cells) - width + 1, width)]
    return {row[0]: dict(zip(headers, row)) for row in rows}


def wait_for_rows(page, condition, timeout_s: float = 400) -> dict:
    for _ in range(int(timeout_s * 2)):
        rows = board_rows(page)
        if condition(rows):
            return rows
        page.wait_for_timeout(500)
    raise AssertionError(f"the board never showed what was expected: {[(name, row['State']) for name, row in board_rows(page).items()]}")


def test_a_class_of_six_and_its_teacher(class_server, browser):
    url = class_server
    teacher = browser.new_page(viewport={"width": 1600, "height": 1000})
    teacher.goto(f"{url}/board?teacher={TEACHER_KEY}")
    wait_until_idle(teacher)
    assert "teacher=" not in teacher.url and teacher.inner_text('[data-testid="stMain"] h1') == "Class board"
    students = {}
    for name in PUBLIC + PRIVATE:
        students[name] = browser.new_page(viewport={"width": 1280, "height": 800})
        students[name].goto(url + TRAIN)
        join_class(students[name], name, private=name in PRIVATE)
    # live: public runs show while they train or wait (two workers: the others wait in the queue), never a private one
    rows = wait_for_rows(teacher, lambda rows: any(row["State"] in ("training", "queued") for row in rows.values()))
    assert set(rows) <= set(PUBLIC), set(rows)
    # ended: every public run with its test NLL and gap, never a private one
    rows = wait_for_rows(teacher, lambda rows: set(rows) == set(PUBLIC) and all(row["State"] == "finished" for row in rows.values()))
    for row in rows.values():
        nll, gap = float(row["Test NLL"]), float(row["Gap"])
        assert nll > 2.0 and gap == pytest.approx(nll - datasets.entropy("8gaussians"), abs=1e-6) and row["Density"].startswith("data:image/png")
    for name in PRIVATE:
        students[name].wait_for_selector("text=/Run finished/", timeout=400_000)
    # no private name in any row or text cell (a density cell is a base64 data URL, whose letters may spell "Eli" by chance)
    rows = board_rows(teacher)
    text = " ".join(cell for row in rows.values() for cell in row.values() if not cell.startswith("data:"))
    assert set(rows) == set(PUBLIC) and not any(name in text for name in PRIVATE)
    assert_healthy(teacher, "board-class-of-six")

    # one run on the projector: tick its row, press the button, its density animation shows
    grid = teacher.locator('[data-testid="stDataFrame"]').bounding_box()
    teacher.mouse.click(grid["x"] + 18, grid["y"] + 35 + 32)  # the first row's tick box (header ~35 px, rows 64 px)
    teacher.get_by_role("button", name=re.compile(r"Put on projector \(1 selected\)")).click()
    teacher.wait_for_selector("text=On the projector", timeout=120_000)
    wait_until_idle(teacher)
    assert figures_drawn(teacher) >= 1
    assert teacher.locator(".js-plotly-plot .heatmaplayer, .js-plotly-plot .hm").count() >= 1  # a density heatmap
    assert_healthy(teacher, "board-projected")
    # presented (in the same session: a reload would need the key again): the projected run alone, whole on one screen at 1080p and 720p
    teacher.set_viewport_size({"width": 1920, "height": 1080})
    teacher.get_by_role("button", name=re.compile("Present these runs")).click()
    for width, height in ((1920, 1080), (1280, 720)):
        teacher.set_viewport_size({"width": width, "height": height})
        presented(teacher, width, height)
        bottoms = teacher.evaluate(FIGURE_BOTTOMS)
        assert len(bottoms) == 1 and max(bottoms) <= height, (width, height, bottoms)
        assert_healthy(teacher, f"board-presented-{height}p")
    teacher.get_by_role("button", name="← Board").click()  # the board again, with the link form
    teacher.get_by_role("textbox", name="Send the class a link").wait_for(timeout=60_000)
    wait_until_idle(teacher)

    # one link to the class: every student's page shows it, and its button opens it
    teacher.get_by_role("textbox", name="Send the class a link").fill(f"{url}/lecture?step=adjoint")
    teacher.get_by_role("button", name="Send to the class").click()
    teacher.wait_for_selector("text=/Sent: Lecture 12/", timeout=30_000)
    for name, page in students.items():
        page.wait_for_selector("text=/Your teacher sent a link/", timeout=30_000)
    ana = students["Ana"]
    ana.get_by_role("link", name=re.compile("Open it")).click()
    ana.wait_for_function("document.location.pathname.endsWith('/lecture') && document.location.search.includes('step=adjoint')", timeout=60_000)
    wait_until_idle(ana)
    assert ana.inner_text('[data-testid="stMain"] h1') == next(step.title for step in STEPS if step.slug == "adjoint")
    bea = students["Bea"]
    bea.get_by_role("button", name="Dismiss").click()
    bea.wait_for_selector("text=/Your teacher sent a link/", state="detached", timeout=30_000)

    # without the key: no board and nothing of the class, on the board's address or any other
    stranger = browser.new_page(viewport={"width": 1280, "height": 800})
    for address in ("/board", f"/board?teacher={TEACHER_KEY[:-1]}", "/board?projector=true", "/?teacher="):
        stranger.goto(url + address)
        wait_until_idle(stranger)
        text = stranger.inner_text("body")
        assert "Class board" not in text and not any(name in text for name in PUBLIC + PRIVATE), address
    # the key leaves the address in projector mode too, where it would be on the class's screen
    presenter = browser.new_page(viewport={"width": 1280, "height": 720})
    presenter.goto(f"{url}/board?teacher={TEACHER_KEY}&projector=true")
    wait_until_idle(presenter)
    presenter.wait_for_function("!document.location.search.includes('teacher=')", timeout=30_000)
    assert "projector=true" in presenter.url and presenter.inner_text('[data-testid="stMain"] h1') == "The class's flows"
    for page in [*students.values(), teacher, stranger, presenter]:
        page.close()
