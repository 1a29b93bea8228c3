"""The density animation's frame buttons and click-to-trace in real headless Chromium."""

import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
from browser_tools import assert_healthy, wait_until_idle

from cnf_core.figures.picking import PICK_SIDE

pytestmark = pytest.mark.browser

# five frames (t = 0, 0.25, ..., 1) on a coarse grid: quick to solve, the default model
SMALL = "/density?density_frames=5&density_resolution=24&density_sample_count=100"
HALF_WIDTH = 4.0  # the page's default view


def open_density(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + SMALL)
    wait_until_idle(page)
    chart = page.locator(".js-plotly-plot").first
    chart.locator(".main-svg").first.wait_for()
    return page, chart


def slider_label(chart) -> list[str]:
    return [text for text in chart.locator("text").all_text_contents() if text.startswith("t = ")]


def wait_for_label(chart, label: str) -> None:
    deadline = time.time() + 30
    while slider_label(chart) != [label] and time.time() < deadline:
        chart.page.wait_for_timeout(200)  # (a plain sleep would hold up Playwright's event loop)
    assert slider_label(chart) == [label], slider_label(chart)


def test_frame_buttons_step_the_animation_one_frame_at_a_time(app_url, browser):
    page, chart = open_density(app_url, browser)
    wait_for_label(chart, "t = 0.00")
    for label in ("t = 0.25", "t = 0.50", "t = 0.75"):
        chart.get_by_text("Frame ▶").click()
        wait_for_label(chart, label)
    chart.get_by_text("◀ Frame").click()
    wait_for_label(chart, "t = 0.50")
    chart.get_by_text("◀ Frame").click()
    wait_for_label(chart, "t = 0.25")
    chart.get_by_text("▶ ¼×").click()  # slow motion plays on from the current frame to the end
    wait_for_label(chart, "t = 1.00")
    chart.get_by_text("Frame ▶").click()  # the last frame has no next one
    chart.get_by_text("◀ Frame").click()
    wait_for_label(chart, "t = 0.75")
    assert_healthy(page, "density-frame-buttons")
    page.close()


def test_a_click_on_the_density_traces_the_particle_through_that_point_at_that_time(app_url, browser):
    page, chart = open_density(app_url, browser)
    wait_for_label(chart, "t = 0.00")
    for label in ("t = 0.25", "t = 0.50"):
        chart.get_by_text("Frame ▶").click()
        wait_for_label(chart, label)
    clicked = (1.0, -0.5)
    x, y = page.evaluate(
        """([x, y]) => { const gd = document.querySelector('.js-plotly-plot'), box = gd.getBoundingClientRect();
           const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
           return [box.left + xa._offset + xa.d2p(x), box.top + ya._offset + ya.d2p(y)]; }""",
        list(clicked),
    )
    page.mouse.move(x, y)
    page.locator(".hoverlayer .hovertext", has_text="click: trace").wait_for()  # over the click layer, at this frame
    page.mouse.click(x, y)
    page.wait_for_url(re.compile("density_points="), timeout=60_000)  # the page's rerun wrote the pick to the address
    wait_until_idle(page)
    picked = parse_qs(urlparse(page.url).query)["density_points"][0]
    match = re.fullmatch(r"(\S+), (\S+) @ 0\.5", picked)
    assert match, picked  # picked at the time of the frame shown
    point = float(match[1]), float(match[2])
    spacing = 2 * HALF_WIDTH / (PICK_SIDE - 1)  # a click lands on the nearest point of the click layer
    assert abs(point[0] - clicked[0]) <= spacing / 2 + 1e-3 and abs(point[1] - clicked[1]) <= spacing / 2 + 1e-3, point

    chart = page.locator(".js-plotly-plot").first
    wait_for_label(chart, "t = 0.50")  # the new figure opens at the frame clicked
    drawn = page.evaluate(
        """() => { const gd = document.querySelector('.js-plotly-plot');
           const named = name => gd._fullData.find(trace => trace.name === name);  // decoded arrays, as drawn
           const line = named('traced paths'), now = named('traced particles'), star = named('picked points');
           return {line: [Array.from(line.x), Array.from(line.y)], now: [now.x[0], now.y[0]], star: [star.x[0], star.y[0]]}; }"""
    )
    # the drawn path, at the frame time it was clicked in, is at the click
    for position in (drawn["now"], drawn["star"], [drawn["line"][0][-2], drawn["line"][1][-2]]):  # the line ends here, then a break
        assert abs(position[0] - point[0]) < 1e-3 and abs(position[1] - point[1]) < 1e-3, (position, point)
    assert len(drawn["line"][0]) > 10  # from the base at t = 0 up to t = 0.5
    panel_title = page.locator(".js-plotly-plot .gtitle", has_text="Point 1: (")  # the panel: log p_t and |f| along the path
    assert panel_title.count() == 1 and "picked at t = 0.50" in panel_title.text_content()
    assert_healthy(page, "density-click-to-trace")
    page.close()


def test_the_animations_own_controls_rerun_only_the_animation(app_url, browser):
    """A colour-scale change redraws the animation without rerunning the page: the frame statistics are not sent again."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    received = []  # every websocket message from the server, as bytes
    page.on("websocket", lambda socket: socket.on("framereceived", lambda message: received.append(message if isinstance(message, bytes) else message.encode())))
    page.goto(app_url + SMALL)
    wait_until_idle(page)
    animation = "[...document.querySelectorAll('.js-plotly-plot')].find(gd => gd.layout && gd.layout.sliders)"
    page.wait_for_function(f"() => {{ const gd = {animation}; return gd && gd._fullData && gd._fullData[0].colorbar.title.text === 'p'; }}")
    stats_title = "Mass in the view and cost per frame".encode()

    def change(action, drawn) -> bytes:
        start = len(received)
        action()
        page.wait_for_function(f"() => {{ const gd = {animation}; return gd && gd._fullData && {drawn}; }}", timeout=60_000)
        wait_until_idle(page)
        return b"".join(received[start:])

    radio = page.locator('[data-testid="stRadio"]', has_text="Colour scale")
    sent = change(lambda: radio.get_by_text("log", exact=True).click(), "gd._fullData[0].colorbar.title.text === 'log p'")
    assert b"log p" in sent and stats_title not in sent  # the fragment's figure, nothing of the rest of the page
    frames = page.locator('[data-testid="stSlider"]', has_text="Frames").locator('input[type="range"]').first
    frames.focus()
    sent = change(lambda: page.keyboard.press("ArrowRight"), "gd.layout.sliders[0].steps.length === 6")
    assert stats_title in sent  # new frames: the whole page reruns, statistics and all
    assert_healthy(page, "density-fragment")
    page.close()
