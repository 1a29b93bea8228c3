"""Addresses the app gave out before its settings moved to Streamlit's own address binding, and the view each opened.

`VIEWS` (old_addresses.json) was recorded from the app as it was then
(`python tests/pages/old_addresses.py --record` in that checkout): for every
address, the page's title and every keyed widget's displayed value. A link a
teacher sent last term must open the same view today (test_old_addresses.py).
Two changes since. The Train page's defaults are the recipe of issue 29 (a
64×32 network, batch 512, lr 0.03, 6 RK4 steps, 2,000 iterations), so a Train
address that does not set these shows the new defaults; the record says so
for them. And each hidden layer has its own width (``train_width_1``, ...):
an old address's one width (``train_width``) is every layer's, which
`expand_renamed` gives the recorded view to compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD = HERE / "old_addresses.json"

# (page file, address parameters): every page, with the settings its address carried
ADDRESSES: list[tuple[str, dict[str, str]]] = [
    ("pages/home.py", {}),
    ("pages/home.py", {"model": "checkerboard (pretrained)"}),
    ("pages/train.py", {}),
    (
        "pages/train.py",
        {
            "train_dataset": "checkerboard", "train_objective": "Flow matching", "train_depth": "2", "train_width": "32",
            "train_activation": "softplus", "train_batch": "512", "train_lr": "0.003", "train_weight_decay": "0.001",
            "train_budget_kind": "Seconds", "train_seconds": "30", "train_seed": "7", "train_method": "dopri5",
            "train_rtol": "0.001", "train_atol": "0.0001", "train_adjoint": "true", "train_trace": "hutchinson-rademacher",
        },
    ),
    ("pages/train.py", {"train_dataset": "rings", "train_method": "euler", "train_steps": "8", "train_iterations": "250", "model": "moons (pretrained)"}),
    ("pages/density.py", {}),
    (
        "pages/density.py",
        {
            "density_frames": "8", "density_resolution": "32", "density_view": "3.5", "density_method": "rk4", "density_steps": "10",
            "density_scale": "log", "density_show_samples": "false", "density_sample_count": "400", "density_show_paths": "true",
            "density_path_mode": "Points I pick (at t = 1)", "density_points": "1, 1 @ 0.5; -1, 0", "density_show_arrows": "true",
            "density_arrows": "10", "density_speed": "200", "density_compare": "moons (pretrained)",
        },
    ),
    ("pages/density.py", {"density_frames": "6", "density_resolution": "24", "density_tolerance": "0.001", "density_seed_count": "4", "model": "pinwheel (pretrained)"}),
    (
        "pages/solver_lab.py",
        {
            "lab_field": "Stiff spiral (test field)", "lab_omega": "50", "lab_max_nfe": "2000", "lab_max_seconds": "5", "lab_land": "false",
            "lab_count": "3", "lab_method_0": "euler", "lab_steps_0": "16", "lab_method_1": "dopri5", "lab_rtol_1": "0.001", "lab_atol_1": "1e-06",
            "lab_method_2": "midpoint", "lab_steps_2": "8", "lab_stepper_x": "1", "lab_stepper_y": "-0.5", "lab_stepper_t0": "0.2",
            "lab_stepper_towards": "t = 0 (base)", "lab_stepper_method": "rk4", "lab_stepper_steps": "8",
        },
    ),
    ("pages/solver_lab.py", {"lab_starts": "1, 1; -1, 0.5", "lab_compare": "moons (pretrained)", "lab_count": "2", "lab_stepper_tolerance": "0.001"}),
    ("pages/precision_recall.py", {}),
    ("pages/precision_recall.py", {"pr_scenario": "Example: mode collapse (3 of 8 modes)", "pr_n": "300", "pr_k": "5", "pr_seed": "3", "pr_tau": "0.8"}),
    ("pages/precision_recall.py", {"pr_n": "200", "pr_k": "4", "pr_tau": "0.6", "pr_compare": "circles (pretrained)"}),
    ("pages/neural_ode.py", {}),
    (
        "pages/neural_ode.py",
        {
            "node_field": "A small random field", "node_seed": "3", "node_strength": "2.5", "node_per_side": "5", "node_fit_mode": "adjoint",
            "node_fit_solver": "dopri5 · tol 1e-3", "node_fit_iterations": "100", "node_tolerance": "1e-05", "node_batch": "64",
            "node_most_steps": "64", "node_euler_steps": "8", "node_reversal_tolerance": "0.001",
        },
    ),
    ("pages/objectives.py", {"objectives_dataset": "moons", "objectives_seconds": "12"}),
    ("pages/lecture.py", {}),
    ("pages/lecture.py", {"step": "adjoint"}),
    ("pages/lecture.py", {"step": "ffjord", "model": "checkerboard (pretrained)"}),
    ("pages/lecture.py", {"step": "summary", "projector": "true"}),
]


def expand_renamed(widgets: dict) -> dict:
    """A recorded view's widgets as they are named now: one width for all hidden layers becomes each layer's."""
    widgets = dict(widgets)
    if "train_width" in widgets:
        width = widgets.pop("train_width")
        widgets.update({f"train_width_{layer}": width for layer in range(1, int(widgets["train_depth"]) + 1)})
    return widgets


def view(at) -> dict:
    """What a visitor sees of the settings: the page title and every keyed widget's displayed value."""
    widgets = {}
    for kind in ("selectbox", "radio", "select_slider", "slider", "number_input", "checkbox", "toggle", "text_input", "multiselect"):
        for widget in at.get(kind):
            if widget.key is None or widget.key.startswith("$$"):
                continue
            widgets[widget.key] = shown(kind, widget)
    titles = [t.value for t in at.title]
    return {"title": titles[0] if titles else None, "widgets": widgets}


def shown(kind: str, widget):
    """A widget's value as the visitor reads it (an option's label, not the object behind it)."""
    if kind in ("selectbox", "radio"):
        return None if widget.index is None else widget.options[widget.index]
    if kind == "select_slider":
        value = widget.value
        format_ = widget.format_func
        return [format_(v) for v in value] if isinstance(value, (list, tuple)) else format_(value)
    if kind == "multiselect":
        return [widget.format_func(v) for v in widget.value]
    value = widget.value
    if isinstance(value, tuple):
        return list(value)
    return value


def record() -> None:
    sys.path.insert(0, str(HERE))
    from app_tools import open_app

    views = []
    for page, params in ADDRESSES:
        at = open_app(page, params)
        views.append({"page": page, "params": params, "view": view(at), "exceptions": [e.value for e in at.exception]})
        print(page, params, "->", views[-1]["view"]["title"], len(views[-1]["view"]["widgets"]), "widgets", file=sys.stderr)
    RECORD.write_text(json.dumps(views, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__" and "--record" in sys.argv:
    record()
