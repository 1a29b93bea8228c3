"""Lecture 12, live: the deck's ideas in its order, one step at a time, each with a figure to poke.

The step is in the address (`?step=adjoint`), with the step's own settings,
so a teacher can link to any step as set up; `&projector=true` presents it
to a class (ui/projector.py).
"""

import streamlit as st

from cnf_core.lecture.deck import SLUGS, STEPS, neighbours, step_index
from ui import address, lecture, lecture_screen, projector, state

state.require_app()


def known_step(slug: str) -> str:
    return SLUGS[step_index(slug)]


def go_to(slug: str) -> None:
    address.write("step", slug)


def step_by(offset: int) -> None:
    """Previous (-1) or Next (+1) from the step in the address when pressed: a click that reaches the server
    under the button's identity of an earlier run still moves one step from where the visitor is."""
    index = step_index(address.read("step", known_step, SLUGS[0])) + offset
    go_to(SLUGS[min(max(index, 0), len(SLUGS) - 1)])


presenting = projector.enabled()
if presenting:
    projector.measure()  # the window's size: each step fits one screen
asked = address.read("step")
slug = address.read("step", known_step, SLUGS[0])
if asked is not None and asked != slug:
    st.info(f"There is no step called “{asked}” in this lecture; here is the first one.")
address.write("step", slug)
index = step_index(slug)
step = STEPS[index]

before, after = neighbours(slug)
if presenting:  # one screen: the walk's buttons on top, the statement folded where the figures need the room
    lecture_screen.header(step, index, len(STEPS), before, after, step_by)
else:
    st.selectbox(
        "Lecture 12, step by step", SLUGS, index=index, key=f"lecture_picker_{slug}",
        format_func=lambda s: f"{step_index(s) + 1}. {STEPS[step_index(s)].title}",
        on_change=lambda: go_to(st.session_state[f"lecture_picker_{slug}"]),
    )
    st.title(step.title)
    st.markdown(step.statement)
    for formula in step.formulas:
        st.latex(formula)

settings = st.fragment(lecture.RENDERERS[slug])(state.active())  # a step's control reruns the step, not the page

if not presenting:
    row = st.columns([1, 1, 1])
    if before is not None:
        row[0].button(f"← {before.title}", key="lecture_previous", on_click=step_by, args=(-1,), width="stretch")
    if after is not None:
        row[1].button(f"{after.title} →", key="lecture_next", on_click=step_by, args=(1,), type="primary", width="stretch")
    if row[2].button(f"Open {step.full_page_title} with this model", key="lecture_full_page", width="stretch"):
        lecture.open_full_page(step, settings or {})
    if step.sources:
        st.caption(step.sources)
    st.caption("To present this step to a class, open it with `projector=true` in the address:")
    st.code(lecture.projector_link(slug), language=None)
