"""The class in this session: the student's name and privacy, the teacher's key, and the banner of the link the teacher sent.

The engine's side (the shared store, the key's check, the publisher the
training pool calls) is `cnf_core.classroom`; this module ties it to a
browser session. The key arrives once in the address (`?teacher=KEY`), is
checked in constant time and leaves the address at once; the session then
counts as the teacher's (`is_teacher`) and the board joins the navigation.
Nothing else about a student is kept: a display name and a private flag.
"""

from __future__ import annotations

import secrets
import sys
import time
from urllib.parse import parse_qsl

import streamlit as st

from cnf_core.classroom import KEY_PARAM, MAX_NAME_LENGTH, ClassSettings, ClassStore, Link, RunPublisher, display_name, generated_name
from cnf_core.errors import CNFLabError

from . import state
from .navigation import PAGES, url_path

__all__ = ["class_settings", "store", "publisher", "admit_teacher", "drop_key_from_address", "is_teacher", "join", "name_controls", "banner", "BANNER_POLL_SECONDS"]

BANNER_POLL_SECONDS = 5.0  # how soon a sent link reaches a student's page that is not being used
TEACHER = "class_teacher"  # session-state keys
MEMBER = "class_member"  # who this session is to the class store: a random token, never the session's own id
NAME, PRIVATE, DISMISSED, TOUCHED = "class_name", "class_private", "class_dismissed_link", "class_touched"


@st.cache_resource(show_spinner=False)
def class_settings() -> ClassSettings:
    """This server's class settings, read once; a key made here is printed once in the server's log with the board's address."""
    settings = ClassSettings.from_env()
    if settings.key_was_made:
        port = st.get_option("server.port")
        print(f"CNF Lab: the teacher's board is http://localhost:{port}/board?{KEY_PARAM}={settings.teacher_key} "
              "(a new key at every start; set CNF_LAB_TEACHER_KEY to keep one)", file=sys.stderr, flush=True)
    return settings


@st.cache_resource(show_spinner=False)
def store() -> ClassStore:
    """The class store every app process of this deployment shares (`CNF_LAB_CLASS_DIR`, else this process's own)."""
    settings = class_settings()
    return ClassStore(settings.folder, settings.ttl)


@st.cache_resource(show_spinner=False)
def publisher() -> RunPublisher:
    """What the training pool calls with each run's news, to keep the board current."""
    return RunPublisher(store())


def admit_teacher() -> None:
    """Read a key from the address: the right one makes this session the teacher's (call before `st.navigation`, which then lists the board)."""
    if KEY_PARAM in st.query_params and class_settings().is_teacher_key(st.query_params.get(KEY_PARAM)):
        st.session_state[TEACHER] = True


def drop_key_from_address() -> None:
    """Take a key, right or wrong, out of the address bar (call after `st.navigation`: a change made before it
    is lost when the first run of a session resolves its page with the address it was opened with)."""
    if KEY_PARAM in st.query_params:
        del st.query_params[KEY_PARAM]


def is_teacher() -> bool:
    return bool(st.session_state.get(TEACHER))


def join() -> None:
    """Make this session a student of the class on its first run (a generated name, public), and keep it alive in the store."""
    now = time.time()
    if MEMBER not in st.session_state:
        st.session_state[MEMBER], st.session_state[NAME], st.session_state[PRIVATE] = secrets.token_hex(8), generated_name(), False
        store().set_student(st.session_state[MEMBER], st.session_state[NAME], False)
        st.session_state[TOUCHED] = now
    elif now - st.session_state.get(TOUCHED, 0.0) > store().ttl / 10:
        st.session_state[TOUCHED] = now
        if store().student(st.session_state[MEMBER]) is None:  # expired while away: join again under the same name
            store().set_student(st.session_state[MEMBER], st.session_state[NAME], st.session_state[PRIVATE])
        else:
            store().touch(st.session_state[MEMBER])


def _changed_name() -> None:
    try:
        name = display_name(st.session_state.class_name_input)
    except CNFLabError as exc:
        st.session_state.class_name_problem = str(exc).split(": ", 1)[-1]
        return
    st.session_state.class_name_problem = None
    st.session_state[NAME] = name
    store().set_student(st.session_state[MEMBER], name, st.session_state[PRIVATE])


def _changed_privacy() -> None:
    private = bool(st.session_state.class_private_input)
    st.session_state[PRIVATE] = private
    store().set_student(st.session_state[MEMBER], st.session_state[NAME], private)
    if not private:
        publisher().republish([run for run in state.runs() if not run.stepped])


def name_controls() -> None:
    """The sidebar's name and privacy controls (a change is written to the class store at once)."""
    st.session_state.class_name_input = st.session_state.get("class_name_input") or st.session_state[NAME]
    st.text_input(
        "Your name in class", key="class_name_input", max_chars=MAX_NAME_LENGTH, on_change=_changed_name,
        help="What your teacher's board shows next to your runs; nothing else about you is shown or kept.",
    )
    if st.session_state.get("class_name_problem"):
        st.caption(f":red[Name not changed: {st.session_state.class_name_problem}]")
    st.session_state.class_private_input = st.session_state[PRIVATE]
    st.toggle("Keep my runs private", key="class_private_input", on_change=_changed_privacy, help="Private runs never reach the teacher's board.")


@st.cache_data(ttl=1.0, show_spinner=False)
def _latest_link() -> Link | None:
    return store().latest_link()  # read at most once a second per process, however many students poll


def _dismiss(link_id: int) -> None:
    st.session_state[DISMISSED] = link_id


@st.fragment(run_every=BANNER_POLL_SECONDS)
def _banner() -> None:
    link = _latest_link()
    if link is None or link.id == st.session_state.get(DISMISSED):
        return
    path, _, query = link.address.partition("?")
    target = next((page for page, _, _ in PAGES if url_path(page) == path.strip("/")), None)
    if target is None:  # a page this version of the app does not have
        return
    with st.container(border=True, key="class_banner"):
        text, go, dismiss = st.columns([6, 1.4, 1], vertical_alignment="center")
        text.markdown(f":material/campaign: Your teacher sent a link: **{link.title}** (`{link.address}`)")
        go.page_link(target, label="Open it", icon=":material/open_in_new:", query_params=dict(parse_qsl(query)) or None)
        dismiss.button("Dismiss", key=f"class_dismiss_{link.id}", on_click=_dismiss, args=(link.id,))


def banner() -> None:
    """The last link the teacher sent, on a student's page until dismissed; looks again every BANNER_POLL_SECONDS."""
    if not is_teacher():
        _banner()
