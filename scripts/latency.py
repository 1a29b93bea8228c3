"""How fast a control answers: from a key press or click in real Chromium to its figure drawn.

A real `streamlit run app.py` (of this checkout, or of `--root`) and headless
Chromium. For each control of the Density page and the Solver lab at their
default settings, the Train page's dataset box (its data preview), the
Straight flows page's Euler steps and quality metric, and the
Lecture's Next button (each step shown once before, so its figures are
cached), the script:

1. waits until the page is quiet (no script run, no chart drawn for a while);
2. stamps the input event in the page itself (a capture listener on the
   document, `performance.now()`) and performs the change: a key press on a
   slider, an option picked in a select box, a click on a radio, checkbox or
   button;
3. watches every Plotly chart's DOM (a MutationObserver on the page) and
   takes the last change to any chart before the page is quiet again.

The latency is (last chart change) − (input event): the new figure drawn, in
the browser's own clock. Each control is changed `--repeats` times (back and
forth, so every change draws something new) after one change to warm the
engine caches that a visitor's first look fills. Figures: one row per
control (median and worst of its repeats), and the median and worst over all
controls against the issue's target (median ≤ 0.4 s, worst ≤ 0.8 s).

    .venv/bin/python scripts/latency.py                      # this checkout
    .venv/bin/python scripts/latency.py --root ../baseline   # another checkout, measured the same way
    .venv/bin/python scripts/latency.py --json out.json --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser_tools import CHROMIUM, CHROMIUM_ARGS, ROOT, running_app, wait_until_idle  # noqa: E402

TARGET_MEDIAN_S, TARGET_WORST_S = 0.4, 0.8
QUIET_MS = 900  # no script run and no chart change for this long: the answer is complete

# Installed once per page load: the time of the last input event and of the last change inside a Plotly chart.
OBSERVER = """
() => {
  if (window.__latency) return;
  window.__latency = {input: null, chart: null};
  for (const kind of ["keydown", "mousedown", "click"]) {
    document.addEventListener(kind, () => { window.__latency.input = performance.now(); }, true);
  }
  const chart = '[data-testid="stPlotlyChart"]';
  const touches = (node) => node && node.nodeType === 1 && (node.closest(chart) || node.querySelector(chart));
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      if ((node && node.closest(chart)) || Array.from(m.addedNodes).some(touches)) {
        window.__latency.chart = performance.now();
        return;
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}
"""


@dataclass
class Control:
    """One control of a page: how to find it and how to change it (back and forth)."""

    page: str  # address path, e.g. "/density"
    name: str
    kind: str  # slider | select | radio | checkbox | button
    label: str  # the widget's label (a button's text)
    options: tuple[str, ...] = ()  # select/radio: the two options changed between


CONTROLS = [
    Control("/density", "frames", "slider", "Frames"),
    Control("/density", "grid resolution", "slider", "Grid resolution"),
    Control("/density", "view half-width", "slider", "View half-width"),
    Control("/density", "colour scale", "radio", "Colour scale", ("log", "linear")),
    Control("/density", "samples shown", "checkbox", "Samples pushed to t"),
    Control("/density", "sample count", "slider", "Samples"),
    Control("/density", "particle paths", "checkbox", "Particle paths"),
    Control("/density", "vector field", "checkbox", "Vector field f(·, t)"),
    Control("/density", "playback speed", "slider", "Playback (ms per frame)"),
    Control("/solver_lab", "configurations", "radio", "Configurations", ("3", "2")),
    Control("/solver_lab", "solver 1 method", "select", "Solver 1", ("midpoint", "euler")),
    Control("/solver_lab", "solver 1 steps", "slider", "Steps over [0, 1]"),
    Control("/solver_lab", "solver 2 method", "select", "Solver 2", ("bosh3", "dopri5")),
    Control("/solver_lab", "vector field", "radio", "Vector field", ("Stiff spiral (test field)", "Active model")),
    Control("/solver_lab", "stepper start t", "slider", "From t"),
    Control("/train", "dataset preview", "select", "Dataset", ("moons", "8gaussians")),
    Control("/straight_flows", "Euler's steps", "slider", "Euler's steps"),
    Control("/straight_flows", "quality metric", "radio", "Quality", ("precision", "sliced W₂ (lower is better)")),
]
LECTURE = "/lecture"


def quiet(page, timeout_s: float = 120.0) -> None:
    """Wait until no script runs and no chart has changed for QUIET_MS."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = page.locator('[data-testid="stStatusWidget"]').count() + page.locator('[data-testid="stSkeleton"]').count()
        last = page.evaluate("() => window.__latency && window.__latency.chart")
        now = page.evaluate("() => performance.now()")
        if not busy and (last is None or now - last > QUIET_MS):
            page.wait_for_timeout(QUIET_MS // 3)
            if not page.locator('[data-testid="stStatusWidget"]').count():
                return
        page.wait_for_timeout(60)
    raise TimeoutError("the page kept changing")


def widget(page, control: Control):
    testid = {"slider": "stSlider", "select": "stSelectbox", "radio": "stRadio", "checkbox": "stCheckbox", "button": "stButton"}[control.kind]
    if control.kind == "button":
        return page.locator(f'[data-testid="{testid}"] button:has-text("{control.label}")').first
    return page.locator(f'[data-testid="{testid}"]').filter(has=page.locator('[data-testid="stWidgetLabel"]', has_text=control.label)).first


def change(page, control: Control, step: int) -> None:
    """Change `control` once: odd steps one way, even steps back."""
    element = widget(page, control)
    element.scroll_into_view_if_needed()
    if control.kind == "slider":
        thumb = element.locator('input[type="range"]').first
        thumb.focus()
        page.keyboard.press("ArrowRight" if step % 2 else "ArrowLeft")
    elif control.kind == "select":
        element.locator('input[role="combobox"]').first.click()
        page.get_by_role("option", name=control.options[(step + 1) % 2], exact=True).first.click()
    elif control.kind == "radio":
        option = control.options[(step + 1) % 2]
        element.locator("label").filter(has_text=option).first.click()
    elif control.kind == "checkbox":
        element.locator("label").first.click()
    else:
        element.click()


def answer_seconds(page, first_change_s: float = 20.0) -> float:
    """Seconds from the last input event to the last chart change, once the page is quiet (NaN: nothing drawn in `first_change_s`)."""
    deadline = time.monotonic() + first_change_s
    while time.monotonic() < deadline:
        marks = page.evaluate("() => window.__latency")
        if marks["chart"] is not None and marks["input"] is not None and marks["chart"] > marks["input"]:
            break
        page.wait_for_timeout(40)
    quiet(page)
    marks = page.evaluate("() => window.__latency")
    if marks["chart"] is None or marks["input"] is None or marks["chart"] < marks["input"]:
        return float("nan")  # nothing drawn after the input
    return (marks["chart"] - marks["input"]) / 1000


def open_at(browser, url: str):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.goto(url)
    wait_until_idle(page, 300_000)
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=300_000)
    page.evaluate(OBSERVER)
    quiet(page)
    return context, page


def measure_controls(browser, base: str, controls: list[Control], repeats: int, log) -> list[dict]:
    rows, by_page = [], {}
    for control in controls:
        by_page.setdefault(control.page, []).append(control)
    for path, page_controls in by_page.items():
        context, page = open_at(browser, base + path)
        for control in page_controls:
            try:
                change(page, control, 1)  # a visitor's first look fills the caches this change needs
                answer_seconds(page)
                change(page, control, 2)
                answer_seconds(page)
                times = []
                for step in range(1, repeats + 1):
                    page.evaluate("() => { window.__latency.chart = null; window.__latency.input = null; }")
                    change(page, control, step)
                    times.append(answer_seconds(page))
                if repeats % 2:  # back to the page's setting, so the next control starts from the defaults
                    change(page, control, repeats + 1)
                    answer_seconds(page)
                rows.append(summary(f"{path[1:]}: {control.name}", times))
            except Exception as exc:  # a control this version of the page does not have
                rows.append({"control": f"{path[1:]}: {control.name}", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"})
            log(json.dumps(rows[-1]))
        context.close()
    return rows


def measure_lecture(browser, base: str, log) -> list[dict]:
    """Next through the whole walk once (filling the caches), back to the start, then Next again, timed.

    A press after which the step's title did not change was lost (the walk
    did not move): it is counted, not timed, and pressed again.
    """
    from urllib.parse import urlencode

    next_button = '[data-testid="stButton"] button:has-text("→")'
    context, page = open_at(browser, f"{base}{LECTURE}")
    for _ in range(60):  # every step once, each shown in full before the next: its figures computed and cached
        if not page.locator(next_button).count():
            break
        page.locator(next_button).first.click()
        answer_seconds(page, first_change_s=120.0)
    context.close()
    context, page = open_at(browser, f"{base}{LECTURE}?{urlencode({'step': 'recap'})}")
    times, lost = [], 0
    for _ in range(60):
        if not page.locator(next_button).count():
            break
        title = page.inner_text("h1")
        page.evaluate("() => { window.__latency.chart = null; window.__latency.input = null; }")
        page.locator(next_button).first.click()
        seconds = answer_seconds(page)
        if page.inner_text("h1") == title:
            lost += 1
        else:
            times.append(seconds)
    context.close()
    row = summary("lecture: Next (cached)", times)
    row["each_s"], row["lost_presses"] = [round(t, 3) for t in times], lost
    log(json.dumps(row))
    return [row]


def summary(name: str, times: list[float]) -> dict:
    drawn = [t for t in times if t == t]
    return {
        "control": name,
        "median_s": round(statistics.median(drawn), 3) if drawn else None,
        "worst_s": round(max(drawn), 3) if drawn else None,
        "repeats": len(times),
        "nothing_drawn": len(times) - len(drawn),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app is measured (default: this one)")
    parser.add_argument("--repeats", type=int, default=5, help="timed changes per control")
    parser.add_argument("--only", default=None, help="comma-separated: measure only controls whose name contains one of these (e.g. 'density,lecture')")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    only = None if args.only is None else [part.strip() for part in args.only.split(",") if part.strip()]
    controls = [c for c in CONTROLS if only is None or any(part in f"{c.page[1:]}: {c.name}" for part in only)]
    with running_app(root=args.root.resolve(), log_name="latency-server.log") as (base, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        rows = measure_controls(browser, base, controls, args.repeats, log) if controls else []
        if only is None or "lecture" in only:
            rows += measure_lecture(browser, base, log)
        browser.close()
    medians = [row["median_s"] for row in rows if row.get("median_s") is not None]
    worsts = [row["worst_s"] for row in rows if row.get("worst_s") is not None]
    print(f"{'control':40s} {'median s':>9s} {'worst s':>8s}")
    for row in rows:
        if "error" in row:
            print(f"{row['control']:40s} {row['error']}")
        else:
            notes = [f"{row['nothing_drawn']} drew nothing"] * bool(row["nothing_drawn"]) + [f"{row.get('lost_presses')} presses lost"] * bool(row.get("lost_presses"))
            print(f"{row['control']:40s} {row['median_s'] or float('nan'):9.3f} {row['worst_s'] or float('nan'):8.3f}" + (f"  ({'; '.join(notes)})" if notes else ""))
    if medians:
        overall = {"median_of_medians_s": round(statistics.median(medians), 3), "worst_s": round(max(worsts), 3)}
        print(f"{'all controls':40s} {overall['median_of_medians_s']:9.3f} {overall['worst_s']:8.3f}   target ≤ {TARGET_MEDIAN_S} / ≤ {TARGET_WORST_S}")
        rows.append({"control": "all", **overall})
    if args.json:
        args.json.write_text(json.dumps({"root": str(args.root), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
