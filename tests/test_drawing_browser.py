"""Draw your own data with a real mouse in headless Chromium: the canvas, the preview, a short training run."""

import pytest
from browser_tools import ARTIFACTS, assert_healthy, model_names, wait_until_idle

from cnf_core import datasets

pytestmark = pytest.mark.browser

VIEW = datasets.VIEW
LINE = ((-2.5, 2.0), (2.5, 2.0))  # data coordinates of a horizontal stroke
BOX = ((-2.0, -3.0), (0.0, -3.0), (0.0, -1.0), (-2.0, -1.0))  # a lasso around this square gets filled


def canvas_mapping(page):
    """The canvas inside its iframe, and data → page-pixel coordinates over its drawing area (inside the border)."""
    frame = page.frame_locator('iframe[src*="drawing_canvas"]')
    canvas = frame.locator("canvas")
    canvas.wait_for(timeout=30_000)
    box = canvas.bounding_box()
    border = canvas.evaluate("c => c.clientLeft")
    side = canvas.evaluate("c => c.clientWidth")
    assert side >= 120 and abs(box["width"] - side - 2 * border) < 1  # a square drawing area, as wide as drawn

    def to_page(x: float, y: float) -> tuple[float, float]:
        return box["x"] + border + (x + VIEW) / (2 * VIEW) * side, box["y"] + border + (VIEW - y) / (2 * VIEW) * side

    return frame, to_page


def drag(page, points, to_page) -> None:
    """Press at the first point, move through the others in small steps, release at the last."""
    page.mouse.move(*to_page(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*to_page(*point), steps=15)
    page.mouse.up()


def preview_points(page) -> list[tuple[float, float]]:
    """The points of the "Data preview" chart, read from the Plotly graph in the page."""
    return page.evaluate(
        """() => {
            const chart = [...document.querySelectorAll('.js-plotly-plot')]
                .find(c => c.layout && c.layout.title && String(c.layout.title.text).includes('Data preview'));
            if (!chart) return [];
            const {x, y} = chart._fullData[0];  // decoded arrays (data[0] keeps Plotly's base64 form)
            return Array.from(x, (value, i) => [value, y[i]]);
        }"""
    )


def choose_drawing(page) -> None:
    page.get_by_role("combobox", name="Dataset").click()  # open the Dataset selectbox
    page.get_by_role("option", name="Draw your own…").click()
    wait_until_idle(page)


def test_mouse_strokes_become_a_dataset_that_trains(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_url + "/train")
    wait_until_idle(page)
    choose_drawing(page)
    assert page.get_by_text("The drawing is empty").count() == 1
    assert page.get_by_role("button", name="Start").is_disabled()

    frame, to_page = canvas_mapping(page)
    drag(page, LINE, to_page)  # the Line tool is the default
    wait_until_idle(page)
    drag(page, ((3.0, -3.0), (3.5, 3.0)), to_page)  # a stroke too many: Undo takes it back
    wait_until_idle(page)
    assert page.get_by_text("2 stroke(s) and 0 shape(s)").count() == 1
    frame.get_by_role("button", name="Undo").click()
    wait_until_idle(page)
    assert page.get_by_text("1 stroke(s) and 0 shape(s)").count() == 1
    frame.get_by_role("button", name="Filled shape").click()
    drag(page, (*BOX, BOX[0]), to_page)
    wait_until_idle(page)
    assert page.get_by_text("1 stroke(s) and 1 shape(s)").count() == 1

    # the preview's points are where the mouse went: along the line, or inside the lassoed square
    points = preview_points(page)
    assert len(points) == 2000
    tolerance = 0.1  # a few pixels of mouse rounding
    on_line = [(x, y) for x, y in points if abs(y - 2.0) < 0.5]
    in_box = [(x, y) for x, y in points if -2 - tolerance <= x <= tolerance and -3 - tolerance <= y <= -1 + tolerance]
    assert len(on_line) + len(in_box) == len(points), [p for p in points if p not in on_line and p not in in_box][:5]
    assert all(-2.5 - 0.5 < x < 2.5 + 0.5 for x, _ in on_line)
    line_ink, box_area = 5.0 * 2 * 0.1, 4.0  # length × 2·thickness (the default 0.1) against the square's area
    assert abs(len(on_line) / len(points) - line_ink / (line_ink + box_area)) < 0.05
    assert min(x for x, _ in on_line) < -2.2 and max(x for x, _ in on_line) > 2.2  # the whole stroke, end to end

    # the CSV download holds the drawing's points
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the drawing as CSV").click()
    csv_path = ARTIFACTS / "drawing.csv"
    download.value.save_as(csv_path)
    uploaded = datasets.from_csv(csv_path, name="drawing.csv")
    assert "5,000 points" in uploaded.description

    # a short training run on it, budget set through the page's widgets
    page.get_by_text("Training", exact=True).click()  # the expander
    iterations = page.get_by_role("spinbutton", name="Iterations")
    iterations.fill("5")
    iterations.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=/Run finished/", timeout=180_000)
    wait_until_idle(page)
    assert_healthy(page, "train-drawing")
    assert "drawing (trained)" in model_names(page)  # the sidebar offers it on every page
    assert frame.locator("#hint").inner_text() == "2 strokes"  # the canvas kept its drawing through the run's reruns
    # to another page and back (in the same session): the canvas shows the kept drawing again
    page.locator('[data-testid="stSidebarNav"] a', has_text="Home").click()
    wait_until_idle(page)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Train").click()
    wait_until_idle(page)
    choose_drawing(page)
    assert frame.locator("#hint").inner_text() == "2 strokes"
    assert page.get_by_text("1 stroke(s) and 1 shape(s)").count() == 1
    frame.get_by_role("button", name="Clear").click()
    wait_until_idle(page)
    assert page.get_by_text("The drawing is empty").count() == 1
    assert_healthy(page, "train-drawing-cleared")
    page.close()
