"""The class board's parts: the table of the class's runs, the link sent to everyone, and runs put on the projector.

The table is one `st.dataframe` (sortable by any column, thumbnails as
images, rows selectable), refreshed in a fragment as the store changes. A
run put on the projector is a copy of its finished model in the teacher's
own session (the student keeps theirs), read from the store by the safe
checkpoint loader, and drawn as the Density page draws a model: the density
animation from the base to the data, with samples and particle paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from cnf_core import load_model
from cnf_core.classroom import RunRecord, class_link
from cnf_core.density import FramesConfig, OverlaysConfig
from cnf_core.errors import CNFLabError
from cnf_core.figures.density import density_animation_figure
from cnf_core.figures.thumbnails import data_url

from . import classroom, frames, projector, state
from .navigation import sendable_pages

__all__ = [
    "MAX_PROJECTED", "REFRESH_SECONDS", "GROUPS", "Filters", "board_table", "send_link_form", "runs_table", "projected_names", "project", "projected_figures", "show_projected",
]

MAX_PROJECTED = 4  # side by side on one screen
REFRESH_SECONDS = 2.0
GROUPS = {"nothing": None, "dataset": "Dataset", "setting": "Setting"}
STATES = {"running": "training", "queued": "queued", "finished": "finished", "stopped": "stopped", "failed": "failed", "cancelled": "cancelled"}
PROJECTED = "board_projected"  # session state: names of the projected models in this session's list
FRAMES = FramesConfig(frames=21, resolution=64)  # four animations at once stay quick to solve
OVERLAYS = OverlaysConfig(sample_count=300, seed_count=8)


@dataclass(frozen=True)
class Filters:
    """What the teacher narrows the board to (empty: everything) and how rows are grouped."""

    datasets: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    group: str = "nothing"


def setting_of(record: RunRecord) -> str:
    return f"{record.objective} · {record.solver}"


def board_table(records: list[RunRecord], filters: Filters = Filters()) -> pd.DataFrame:
    """The board's rows (indexed by run key): filtered, grouped rows together, then best NLL (or loss) first."""
    rows = [
        {
            "key": r.key, "Student": r.name, "Dataset": r.dataset, "Data": data_url(r.data_png), "Objective": r.objective, "Solver": r.solver,
            "Setting": setting_of(r), "State": STATES.get(r.state, r.state), "Iteration": r.iteration, "Budget": r.iterations,
            "Test NLL": r.nll, "Gap to entropy": r.gap, "Loss": r.loss, "Density": data_url(r.density_png), "Projectable": r.has_model,
        }
        for r in records
        if (not filters.datasets or r.dataset in filters.datasets) and (not filters.settings or setting_of(r) in filters.settings)
    ]
    columns = ["key", "Student", "Dataset", "Data", "Objective", "Solver", "Setting", "State", "Iteration", "Budget", "Test NLL", "Gap to entropy", "Loss", "Density", "Projectable"]
    table = pd.DataFrame(rows, columns=columns)
    if not table.empty:
        order = ([GROUPS[filters.group]] if GROUPS.get(filters.group) else []) + ["Test NLL", "Loss", "Student"]
        table = table.sort_values(order, na_position="last", kind="stable")
    return table.set_index("key")


def send_link_form() -> None:
    """Send a link (a page with its settings, or a Lecture step) to every student's page; a new one replaces the old."""
    with st.form("board_send_link", clear_on_submit=False, border=True):
        address = st.text_input(
            "Send the class a link", placeholder="/lecture?step=adjoint  or  /train?train_dataset=checkerboard",
            help="Any page of this app with its settings: copy it from your address bar. It shows as a banner on every student's page, with a button that opens it.",
        )
        sent = st.form_submit_button("Send to the class", icon=":material/campaign:")
    if sent:
        try:
            path, title = class_link(address, sendable_pages())
        except CNFLabError as exc:
            st.error(str(exc).split(": ", 1)[-1])
        else:
            classroom.store().send_link(path, title)
            st.success(f"Sent: {title} ({path}). Every student's page shows it within {classroom.BANNER_POLL_SECONDS:g} s.")
    latest = classroom.store().latest_link()
    if latest is not None:
        shown, withdraw = st.columns([5, 1], vertical_alignment="center")
        shown.caption(f"The class's banner now: **{latest.title}** (`{latest.address}`)")
        withdraw.button("Take it down", key="board_withdraw_link", on_click=classroom.store().withdraw_links, help="Removes the banner from every student's page.")


COLUMNS = {
    "Data": st.column_config.ImageColumn("Data", help="Where the data's points lie (a drawing or an upload as the student made it)"),
    "Density": st.column_config.ImageColumn("Density", help="The model's density at its latest snapshot"),
    "Iteration": st.column_config.NumberColumn("Iteration", format="%d"),
    "Budget": st.column_config.NumberColumn("Budget", format="%d", help="Iterations asked for (empty: a time budget)"),
    "Test NLL": st.column_config.NumberColumn("Test NLL", format="%.3f", help="Exact NLL on held-out points (nats), measured when the run ends"),
    "Gap to entropy": st.column_config.NumberColumn("Gap", format="%.3f", help="Test NLL minus the data's entropy: KL(data ‖ model) ≥ 0, where the entropy is known"),
    "Loss": st.column_config.NumberColumn("Loss", format="%.3f", help="The training loss at the latest report"),
    "Projectable": st.column_config.CheckboxColumn("Model", help="A finished model that can go on the projector"),
}


def runs_table(filters: Filters) -> list[str]:
    """The board's table; returns the keys of the rows the teacher selected."""
    records = classroom.store().board()
    table = board_table(records, filters)
    students = len({r.owner for r in records})
    st.caption(f"{len(table)} of {len(records)} public runs, from {students} student{'s' * (students != 1)}. Private runs are never listed.")
    event = st.dataframe(
        table.drop(columns=["Setting"]), key="board_table", hide_index=True, on_select="rerun", selection_mode="multi-row",
        column_config=COLUMNS, row_height=64, width="stretch",
    )
    return [table.index[i] for i in event.selection.rows if i < len(table)]


def projected_names() -> list[str]:
    """The models on the projector (names in this session's model list that are still there)."""
    return [name for name in st.session_state.get(PROJECTED, []) if name in state.models()]


def project(keys: list[str]) -> list[str]:
    """Copy the selected runs' finished models into this session and put them on the projector; returns what could not be."""
    records = {r.key: r for r in classroom.store().board()}
    names, problems = [], []
    for key in keys[:MAX_PROJECTED]:
        record, checkpoint = records.get(key), classroom.store().checkpoint(key)
        if record is None or checkpoint is None:
            problems.append(f"{record.name if record else 'a run'}: no finished model yet")
            continue
        try:
            model = load_model(checkpoint)
        except CNFLabError as exc:
            problems.append(f"{record.name}: its model could not be read ({exc})")
            continue
        name = state.unique_name(f"{record.name}: {record.dataset} (class)")
        state.add_model(state.ModelEntry(name, model, "class"), make_active=False)
        names.append(name)
    if names:
        st.session_state[PROJECTED] = names
    return problems


def projected_figures() -> list[tuple[object, str]]:
    """(figure, key) of each projected model: its density animation from the base to the data, with samples and particle paths."""
    drawn = []
    for name in projected_names():
        model = state.models()[name].model
        try:
            solved = frames.frames_for(model.field, FRAMES)
            shown, problems = frames.overlays_for(model.field, FRAMES, OVERLAYS)
        except CNFLabError as exc:
            st.error(f"{name}: the density could not be computed: {exc}")
            continue
        for problem in problems:
            st.caption(f"{name}: overlay skipped: {problem}")
        drawn.append((density_animation_figure(solved, title=name.removesuffix(" (class)"), **shown), f"board_projected_{name}"))
    return drawn


def show_projected() -> None:
    """The projected models side by side; on the projector, one screen high (`projector.charts`)."""
    figures = projected_figures()
    if projector.enabled():
        projector.charts(figures)
        return
    for (figure, key), column in zip(figures, st.columns(len(figures)) if figures else []):
        column.plotly_chart(figure, key=key)
