"""Lecture 12, live: the deck's ideas in its order, one step at a time, each with a figure to poke.

The step is in the address (`?step=adjoint`), so a teacher can link to any
step; `&projector=true` presents it to a class (ui/projector.py).
"""

import streamlit as st

from cnf_core.lecture.deck import SLUGS, STEPS, neighbours, step_index
from ui import lecture, projector, state, url

state.require_app()


def go_to(slug: str) -> None:
    st.query_params["step"] = slug


presenting = projector.enabled()
slug = st.query_params.get("step", SLUGS[0])
if slug not in SLUGS:
    st.info(f"There is no step called “{slug}” in this lecture; here is the first one.")
    slug = SLUGS[0]
    st.query_params["step"] = slug
index = step_index(slug)
step = STEPS[index]

if presenting:
    st.caption(f"Lecture 12 · {index + 1} / {len(STEPS)}")
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

settings = lecture.RENDERERS[slug](state.active())

before, after = neighbours(slug)
row = st.columns([1, 1] if presenting else [1, 1, 1])
if before is not None:
    row[0].button(f"← {before.title}", key="lecture_previous", on_click=go_to, args=(before.slug,), width="stretch")
if after is not None:
    row[1].button(f"{after.title} →", key="lecture_next", on_click=go_to, args=(after.slug,), type="primary", width="stretch")
if not presenting:
    if row[2].button(f"Open {step.full_page_title} with this model", key="lecture_full_page", width="stretch"):
        lecture.open_full_page(step, settings)
    if step.sources:
        st.caption(step.sources)
    st.caption("To present this step to a class, open it with `projector=true` in the address:")
    st.code(lecture.projector_link(slug), language=None)
url.publish({}, extra={"step": slug})
