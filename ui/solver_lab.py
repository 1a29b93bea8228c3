"""The Solver lab's glue: its cached engine calls, charts built once per content, the path starts a person clicks,
the stepper's walk and the train-vs-eval matrix trained in the pool.

Each section of ``pages/solver_lab.py`` is an ``st.fragment``: a control
reruns its section only. What a section draws again without a change (the
reference column while a solver changes, every other column) is not rebuilt:
`chart` keeps each figure, built once for all sessions, under the
fingerprint of the inputs it was built from.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st
import torch

from cnf_core import datasets
from cnf_core import solver_lab as lab
from cnf_core.density import MAX_PICKED_POINTS, velocity_frames
from cnf_core.errors import CNFLabError
from cnf_core.figures import density_figure
from cnf_core.figures.picking import clicked_points
from cnf_core.figures.solvers import path_figure, step_size_figure
from cnf_core.solver_lab import stepper
from cnf_core.solver_lab.train_eval import TrainEvalConfig, TrainEvalMatrix

from . import address, jobs, points
from .cache import cached, fingerprint

__all__ = [
    "reference",
    "checked_reference",
    "configuration",
    "work_precision",
    "exact_path",
    "arrows",
    "chart",
    "starts",
    "has_starts",
    "add_start",
    "undo_start",
    "clear_starts",
    "can_undo_starts",
    "publish_starts",
    "reference_column",
    "outcome",
    "cost_and_accuracy",
    "step_sizes",
    "work_precision_notes",
    "matrix_notes",
    "walk",
    "advance",
    "step_buttons",
    "MATRIX",
    "STEPPER_CAPTION",
    "matrix_caption",
    "matrix",
]

STARTS = "lab_starts"  # session and address key of the path starts, "x, y; x, y" (empty: random draws of the base)
MATRIX = "lab_matrix"  # the page's slot for its train-vs-eval job (`ui.jobs`)

STEPPER_CAPTION = (
    "One point of {field}, moved by the solver one try at a time. Numbered dots are the stages, where the method evaluates f (dopri5: the first is "
    "the last step's final evaluation, reused, plus six new ones; RK4: four; Euler: one); the star is the proposed endpoint. The error estimate (the "
    "difference of the method's two embedded answers, for dopri5 of orders 5 and 4) is scaled by atol + rtol · max(|y₀|, |y₁|) and its RMS compared "
    "with 1, as torchdiffeq does; the steps taken are torchdiffeq's own."
)


def matrix_caption(config: TrainEvalConfig) -> str:
    """What the train-vs-eval matrix trains and why its coarse NLLs are not densities', read from the config it runs."""
    training = config.train_config(config.train_with[0])
    return (
        f"Small flows ({training.field.widths} {training.field.activation}, batch {training.batch_size}) trained from the same seed, each with one solver, then scored "
        f"on {config.n_test:,} held-out points with every solver, in the server's training queue. The NLL a coarse solver reports is not the NLL of a "
        "density: the change of variables only holds for the exact flow."
    )

# ---------------------------------------------------------------- cached engine calls


@cached(max_entries=16, show_spinner="Reference solve (dopri8, landing on t = 1)…")
def reference(field, dataset: str | None, starts: torch.Tensor | None = None) -> lab.Reference:
    return lab.lab_reference(field, dataset, starts=starts)


def checked_reference(field, dataset: str | None) -> lab.Reference | None:
    """The reference solve from the path starts in the address, or None with the reason shown on the page."""
    try:
        return reference(field, dataset, starts())
    except CNFLabError as exc:
        st.error(f"The reference solve failed, so nothing can be compared: {exc}")
        return None


@cached(max_entries=64, show_spinner=False)
def configuration(field, config, reference: lab.Reference, land: bool) -> lab.ConfigurationResult:
    return lab.evaluate_configuration(field, config, reference, land=land)


@cached(max_entries=16, show_spinner="Work–precision: one solve per method and setting…")
def work_precision(field, test_points: torch.Tensor, test_log_p: torch.Tensor, config: lab.WorkPrecisionConfig) -> lab.WorkPrecision:
    return lab.work_precision(field, test_points, test_log_p, config)


@cached(max_entries=32, show_spinner=False)
def exact_path(field, start: tuple, t0: float, t1: float):
    """The walk's exact path, or None where even dopri5 at 1e-9 gives up (remembered too, so a Step never waits on it again)."""
    try:
        return stepper.reference_path(field, start, t0, t1)
    except CNFLabError:
        return None


@cached(max_entries=64, show_spinner=False)
def arrows(field, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The field's arrows at time t over the standard view: (points, velocities)."""
    grid_points, velocities = velocity_frames(field, [t], datasets.VIEW)
    return grid_points, velocities[0]


# ---------------------------------------------------------------- charts built once per content, for every session


def chart(key: str, build: Callable, *args, container=st, on_select: Callable | None = None, **options) -> None:
    """``container.plotly_chart(build(*args, **options), key=key)``, the figure built once for every session alike.

    A figure costs tens of milliseconds to build (Plotly validates every
    property, and copies its template), so a section that reruns for one
    solver's change draws its other charts, and every visitor at the same
    settings draws all of them, from `_built`. `on_select`: a click on a point
    calls it (``selection_mode="points"``).
    """
    figure = _built(fingerprint((build.__module__, build.__qualname__, args, options)), build, args, options)
    selection = dict(on_select=on_select, selection_mode="points") if on_select is not None else {}
    container.plotly_chart(figure, key=key, **selection)


@st.cache_resource(max_entries=256, show_spinner=False)
def _built(content: str, _build: Callable, _args: tuple, _options: dict):
    """The figure `_build(*_args, **_options)`, kept by its inputs' fingerprint `content` (only read: `st.plotly_chart` copies it)."""
    return _build(*_args, **_options)


# ---------------------------------------------------------------- path starts picked on the reference paths (Undo: ui.points)

_KEYS = (STARTS,)


def _checked(text: str) -> str:
    points.parse_points(text)  # a ConfigError (a ValueError) for text that is not "x, y; …"
    return text


def _text() -> str:
    if not st.session_state.get("lab_starts_read"):  # a copied address opens with its starts, once per session
        st.session_state.lab_starts_read = True
        st.session_state[STARTS] = address.read(STARTS, _checked, "")
    return st.session_state.get(STARTS) or ""


def has_starts() -> bool:
    return bool(_text().strip())


def starts() -> torch.Tensor | None:
    """The picked path starts (m, 2), or None: random draws of the base."""
    return points.parse_points(_text()) if has_starts() else None


def add_start() -> None:
    """A click on the reference paths (the chart's callback): a path starts there, for every solver and the round trip."""
    event = st.session_state.get("lab_ref_paths")
    picked = clicked_points(event["selection"] if event else None)
    if not picked:
        return
    current = starts()
    added = torch.tensor(picked, dtype=torch.float64)
    every = added if current is None else torch.cat([current, added])
    points.remember(_KEYS)
    st.session_state[STARTS] = points.format_picked_points(every[-MAX_PICKED_POINTS:])


def undo_start() -> None:
    points.undo(_KEYS)


def clear_starts() -> None:
    points.remember(_KEYS)
    st.session_state[STARTS] = ""


def can_undo_starts() -> bool:
    return points.can_undo(_KEYS)


def publish_starts() -> None:
    """The starts into the address (none: no key), so a copied address shows the same paths."""
    address.write(STARTS, _text(), default="")


# ---------------------------------------------------------------- the configurations side by side: their parts


def reference_column(ref: lab.Reference) -> None:
    """The reference's density and paths; a click on the paths starts one there (Undo, or back to random starts)."""
    st.markdown("**Reference**")
    st.caption(f"dopri8 at {ref.solver.rtol:g} (grid: {ref.grid_solver.rtol:g}) · {ref.nfe} NFE in all · {ref.seconds:.1f} s")
    chart("lab_ref_density", density_figure, ref.log_density, ref.grid, title="p₁ (reference)")
    chart("lab_ref_paths", path_figure, None, ref, title="Reference paths · click to start one", pickable=True, on_select=add_start)
    buttons = st.columns(2)
    buttons[0].button("Undo", key="lab_starts_undo", on_click=undo_start, disabled=not can_undo_starts(), width="stretch")
    buttons[1].button("Random starts", key="lab_starts_clear", on_click=clear_starts, disabled=not has_starts(), width="stretch")
    st.caption(f"Paths start at {'the points you clicked' if has_starts() else 'random draws of the base'}; every solver's paths and round trip start there too.")


def outcome(result: lab.ConfigurationResult) -> None:
    """How a configuration's solves went: their cost, or why they stopped."""
    if result.ok:
        st.caption(f"{result.density_nfe} NFE · {result.density_seconds:.2f} s for the density")
        return
    st.warning(f"**{result.status}** — {result.message}")
    if result.path is not None:
        st.caption("The paths below are the diverging solve itself: they run off the plot.")


def cost_and_accuracy(results: list[lab.ConfigurationResult], field_name: str, other, land: bool) -> None:
    """The table of what each solver cost and how far it is off, with the same solvers on a second model (`other`) below."""
    st.subheader("Cost and accuracy")
    rows = [{"model": field_name, **result.summary()} for result in results]
    if other is not None:
        rows += _side_by_side(other, [result.config for result in results], land)
    st.dataframe(rows, hide_index=True, column_config={name: st.column_config.NumberColumn(format="%.2e") for name in lab.ERROR_COLUMNS})
    st.caption(
        f"On {field_name}. Density errors on a {lab.GRID_RESOLUTION}×{lab.GRID_RESOLUTION} grid over [-4, 4]²; log-likelihood errors on "
        f"{lab.TEST_POINTS} test points (NLL error < 0: the solver flatters the model); inversion error: max |z(0) − backward(forward(z(0)))| "
        "over the path starts, both with the same solver."
    )


def step_sizes(results: list[lab.ConfigurationResult]) -> None:
    """Each adaptive solver's accepted steps over the t they cover, its rejected tries as crosses."""
    if any(result.accepted_steps for result in results):
        chart("lab_steps_figure", step_size_figure, results, title="Step sizes of the adaptive solvers along t (test-point solve)")
        st.caption(
            "Each bar is one accepted step, drawn over the interval of t it covers: the solver shrinks its steps where the dynamics are hard. "
            "Crosses are rejected tries (their error estimate was over the tolerance)."
        )
    elif any(result.config.adaptive for result in results):
        st.caption("The adaptive solves failed or report no steps (scipy_solver), so there are no step sizes to show.")


def _side_by_side(other, configs: list, land: bool) -> list[dict]:
    """The same solver configurations on a second model, against its own reference: a row of densities; its table rows."""
    st.markdown(f"**Side by side with {other.name}**: the same solvers on the second model, against its own reference.")
    try:
        other_ref = reference(other.model.field, other.dataset)
    except CNFLabError as exc:
        st.error(f"The reference solve of {other.name} failed: {exc}")
        return []
    columns = st.columns(len(configs) + 1)
    chart("lab_compare_ref", density_figure, other_ref.log_density, other_ref.grid, container=columns[0], title="p₁ (reference)")
    rows = []
    for index, (column, config) in enumerate(zip(columns[1:], configs)):
        with st.spinner(f"{other.name}: solving with {config.describe()}…"):
            result = configuration(other.model.field, config, other_ref, land)
        rows.append({"model": other.name, **result.summary()})
        if result.log_density is not None:
            chart(f"lab_compare_density_{index}", density_figure, result.log_density, other_ref.grid, container=column, title=f"p₁ · {config.describe()}")
        if not result.ok:
            column.warning(f"**{result.status}** — {result.message}")
    return rows


def work_precision_notes(diagram: lab.WorkPrecision) -> None:
    """Each fixed-grid method's fitted order beside its own, and the solves left out of the diagram."""
    if diagram.orders_note():
        st.markdown(diagram.orders_note())
        st.caption(
            "Error ≈ C hᵖ only once h is small enough: a fitted order away from the method's means the finest steps are not yet in that asymptotic range (a "
            "trained field needs many steps to get there: extend the step counts). Errors under the dotted line are the reference's own and are not fitted."
        )
    if diagram.failures_note():
        st.warning(diagram.failures_note())


# ---------------------------------------------------------------- the stepper's walk, kept in the session


def walk(field, config: stepper.StepperConfig) -> stepper.StepperState:
    """This session's walk for `field` and `config`; a fresh one when either changed."""
    identity = (fingerprint(field), config)
    kept = st.session_state.get("lab_stepper_walk")
    if kept is None or kept[0] != identity:
        kept = (identity, stepper.start(field, config))
        st.session_state.lab_stepper_walk = kept
    return kept[1]


def advance(field, config: stepper.StepperConfig, how: str) -> None:
    """The buttons' callback (it runs before the rerun draws them): one more try ("step"), all the way ("run"), or a fresh start."""
    current = walk(field, config)
    moves = {"step": stepper.step, "run": stepper.run_to_end}
    current = moves[how](field, current) if how in moves else stepper.start(field, config)
    st.session_state.lab_stepper_walk = ((fingerprint(field), config), current)


def step_buttons(field, config: stepper.StepperConfig, current: stepper.StepperState, container=st) -> None:
    """Step (one try), Run to end, Reset: each moves the walk in its callback, before the section draws it again."""
    with container:
        st.button("Step", key="lab_stepper_step", type="primary", width="stretch", disabled=current.finished, on_click=advance, args=(field, config, "step"))
        st.button("Run to end", key="lab_stepper_run", width="stretch", disabled=current.finished, on_click=advance, args=(field, config, "run"))
        st.button("Reset", key="lab_stepper_reset", width="stretch", on_click=advance, args=(field, config, "reset"))


# ---------------------------------------------------------------- the train-vs-eval matrix, trained in the pool


def matrix(config: TrainEvalConfig | None) -> TrainEvalMatrix | None:
    """The matrix of `config` if this session trained it; else the page's job while it is queued or training (with
    Stop), how it ended, or what pressing the button would train.

    Every matrix the session trained is kept (by its config), so going back
    to earlier settings shows theirs again without training.
    """
    trained = st.session_state.setdefault("lab_matrices", {})
    run = jobs.latest(MATRIX)
    if run is not None:
        jobs.live_status(MATRIX)
        if not run.active:
            if run.result is not None:
                trained[run.job.config] = run.result
            elif run.job.config == config:
                jobs.run_status(run)
                if run.error:
                    st.error(run.error)
    if config is not None and config not in trained and (run is None or not run.active):
        flows = len(config.train_with)
        st.info(f"Press **Train & evaluate** to train {flows} small flow{'s' * (flows != 1)} ({config.iterations} iterations each, about {config.expected_seconds():.0f} s in all).")
    return trained.get(config)


def matrix_notes(cross: TrainEvalMatrix) -> None:
    """Trainings that did not finish, and what the matrix cost."""
    for failure in cross.training_failures():
        st.warning(failure)
    st.caption(cross.cost_note())
