"""Does every Lecture step fit one screen in projector mode? The bottom of its last figure against the viewport.

A real `streamlit run app.py` (of this checkout, or of `--root`) and headless
Chromium. For each step of the deck, at each viewport (1920×1080 and
1280×720 by default), the script opens
`/lecture?step=SLUG&projector=true&model=8gaussians (pretrained)` in one tab
per viewport, waits until the page is laid out for the window and quiet
(projector mode hides the status widget: the app's script state and the
spinners say when a run is over), and reads in document
coordinates (scroll at 0): the bottom of the title (h1), the bottom of the
last Plotly figure, each figure's height, and the document's height. A step
fits when the bottom of its last figure is at most the viewport's height.

    .venv/bin/python scripts/projector_fit.py                      # this checkout
    .venv/bin/python scripts/projector_fit.py --root /tmp/baseline # another checkout, measured the same way
    .venv/bin/python scripts/projector_fit.py --url http://127.0.0.1:8765 --json fit.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from browser_tools import chromium, running_app, wait_until_idle  # noqa: E402

from cnf_core.lecture.deck import SLUGS  # noqa: E402

MODEL = "model=8gaussians+%28pretrained%29"
VIEWPORTS = ((1920, 1080), (1280, 720))
MEASURE = """() => {
    const box = (element) => { const r = element.getBoundingClientRect(); return [r.top + window.scrollY, r.bottom + window.scrollY]; };
    const title = document.querySelector('[data-testid="stMain"] h1');
    const figures = [...document.querySelectorAll('.js-plotly-plot')].map(box);
    return {title: title ? box(title)[1] : null, figures: figures, page: document.documentElement.scrollHeight};
}"""


SETTLED = """([width, height]) => {
    const layout = getComputedStyle(document.documentElement).getPropertyValue('--projector-layout');
    const state = document.querySelector('[data-test-script-state]');
    return (!layout || layout.includes(width + 'x' + height)) && !document.querySelector('[data-testid=stSpinner]')
        && (!state || state.getAttribute('data-test-script-state') === 'notRunning');
}"""


def measure(page, url: str, slug: str) -> dict:
    page.goto(f"{url}/lecture?step={slug}&projector=true&{MODEL}")
    size = page.viewport_size
    for _ in range(2):  # laid out for this window (a checkout that knows it), nothing running, then a second of quiet
        page.wait_for_function(SETTLED, arg=[size["width"], size["height"]], timeout=300_000)
        wait_until_idle(page)
    page.evaluate("window.scrollTo(0, 0)")
    found = page.evaluate(MEASURE)
    figures = found["figures"]
    return {
        "title_bottom": round(found["title"]) if found["title"] is not None else None,
        "first_top": round(figures[0][0]) if figures else None,
        "last_bottom": round(max(bottom for _, bottom in figures)) if figures else None,
        "heights": [round(bottom - top) for top, bottom in figures],
        "page": found["page"],
    }


def table(url: str, viewports=VIEWPORTS, slugs=SLUGS) -> dict:
    """{slug: {"W×H": measurement}} for every step and viewport (one tab per viewport, each step visited once before it is measured)."""
    results: dict = {slug: {} for slug in slugs}
    for browser in chromium():
        for width, height in viewports:
            page = browser.new_page(viewport={"width": width, "height": height})
            for slug in slugs:  # a first visit computes the step's figures; the second measures it as a class sees it
                measure(page, url, slug)
                results[slug][f"{width}×{height}"] = measure(page, url, slug)
            page.close()
    return results


def print_table(results: dict, viewports=VIEWPORTS) -> None:
    names = [f"{w}×{h}" for w, h in viewports]
    print("| step | " + " | ".join(f"{name}: last figure's bottom (fits?) · figure heights" for name in names) + " |")
    print("|---|" + "---|" * len(names))
    for slug, row in results.items():
        cells = []
        for (width, height), name in zip(viewports, names):
            m = row[name]
            fits = "✓" if m["last_bottom"] is not None and m["last_bottom"] <= height else "✗"
            cells.append(f"{m['last_bottom']} {fits} · {', '.join(map(str, m['heights']))}")
        print(f"| {slug} | " + " | ".join(cells) + " |")
    for (width, height), name in zip(viewports, names):
        fitting = sum(1 for row in results.values() if row[name]["last_bottom"] is not None and row[name]["last_bottom"] <= height)
        print(f"{name}: {fitting} of {len(results)} steps fit one screen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app already running (default: start one of --root on a free port)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve when --url is not given")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    arguments = parser.parse_args()
    server = contextlib.nullcontext((arguments.url, None)) if arguments.url else running_app(root=arguments.root.resolve(), log_name="projector-fit-server.log")
    with server as (url, _):
        results = table(url)
    print_table(results)
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
