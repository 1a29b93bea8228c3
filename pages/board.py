"""The class board, for the teacher only: every public run of the class, live; runs on the projector; one link to the whole class.

Only a session opened with the teacher's key reaches this page (app.py adds
it to the navigation then, and nowhere else); the check here is a second lock.
"""

import streamlit as st

from ui import board, classroom, projector, state

state.require_app()
if not classroom.is_teacher():
    st.stop()


def present(on: bool) -> None:
    """Switch this page to projector mode and back, in this session (a new tab would need the key again)."""
    if on:
        st.query_params[projector.PARAM] = "true"
    elif projector.PARAM in st.query_params:
        del st.query_params[projector.PARAM]


if projector.enabled():  # the projected runs alone, on one screen
    projector.measure()
    title, back = st.columns([5, 1], vertical_alignment="center")
    title.title("The class's flows")
    back.button("← Board", key="board_back", on_click=present, args=(False,))
    projector.drawn(projector.row(lines=1, size=projector.TITLE_SIZE, line=projector.TITLE_LINE))
    if not board.projected_names():
        st.info("No run is on the projector: select finished runs on the board and press “Put on projector”.")
    board.show_projected()
    st.stop()

st.title("Class board")
st.caption(
    "Every student's run that is not private, live as it trains: select up to four finished runs to put their models "
    "on the projector (a copy in your session: the students keep theirs)."
)
board.send_link_form()

records = classroom.store().board()
datasets = sorted({r.dataset for r in records})
settings = sorted({board.setting_of(r) for r in records})
filter_columns = st.columns([2, 2, 1])
filters = board.Filters(
    datasets=tuple(filter_columns[0].multiselect("Datasets", datasets, key="board_datasets", placeholder="every dataset")),
    settings=tuple(filter_columns[1].multiselect("Settings (objective · solver)", settings, key="board_settings", placeholder="every setting")),
    group=filter_columns[2].selectbox("Group by", list(board.GROUPS), key="board_group"),
)


@st.fragment(run_every=board.REFRESH_SECONDS)
def live_table(filters: board.Filters) -> None:
    selected = board.runs_table(filters)
    label = f"Put on projector ({min(len(selected), board.MAX_PROJECTED)} selected)" if selected else "Put on projector"
    if st.button(label, icon=":material/co_present:", disabled=not selected, key="board_project", type="primary"):
        if len(selected) > board.MAX_PROJECTED:
            st.warning(f"The projector shows {board.MAX_PROJECTED} runs side by side: the first {board.MAX_PROJECTED} selected are shown.")
        problems = board.project(selected)
        for problem in problems:
            st.warning(problem)
        if not problems:
            st.rerun()  # the projected models are drawn below, outside this fragment


live_table(filters)

names = board.projected_names()
if names:
    st.subheader("On the projector")
    st.button("Present these runs", icon=":material/slideshow:", key="board_present", on_click=present, args=(True,), help="These runs alone, one screen high, in projector mode.")
    board.show_projected()
