"""The class board under AppTest: names and privacy, the teacher's key, live runs, the projector, the link sent to the class.

Every session of one AppTest process shares the server's class store and
training pool, as the students of one server do.
"""

import json
import time

import pytest
from app_tools import no_errors, open_app
from browser_tools import TEACHER_KEY
from streamlit.proto.WidgetStates_pb2 import WidgetState
from test_train_page import start_tiny_run, wait_for_training

from cnf_core import datasets


@pytest.fixture(autouse=True)
def no_banner_left_behind():
    """The class store lives as long as this test process: take a sent link down, or every later page test would show its banner."""
    yield
    from ui import classroom

    classroom.store().withdraw_links()


def teacher_board():
    at = open_app("pages/board.py", {"teacher": TEACHER_KEY})
    no_errors(at)
    assert at.title[0].value == "Class board" and "teacher" not in at.query_params  # the key left the address
    return at


def student(name: str, private: bool = False):
    at = open_app("pages/train.py")
    at.sidebar.text_input(key="class_name_input").set_value(name).run()
    if private:
        at.sidebar.toggle(key="class_private_input").set_value(True).run()
    no_errors(at)
    return at


def board_rows(at):
    at.run()
    no_errors(at)
    return at.dataframe[0].value


def select_rows(at, rows: list[int]):
    """What the browser sends when the teacher ticks table rows."""
    table = at.dataframe[0]
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=table.proto.id, string_value=json.dumps({"selection": {"rows": rows, "columns": [], "cells": []}})))
    at._run(states)
    no_errors(at)


def test_without_the_key_there_is_no_board_and_a_wrong_key_is_dropped():
    at = open_app(None, {"teacher": TEACHER_KEY[:-1] + "x"})
    no_errors(at)
    assert "teacher" not in at.query_params and "class_teacher" not in at.session_state
    try:
        at.switch_page("pages/board.py")
    except ValueError as exc:  # not a page of this session's app at all
        assert "Could not find a navigation page" in str(exc)
    else:
        raise AssertionError("the board opened without the key")


def test_the_board_lists_public_runs_live_and_never_a_private_one():
    ana, bo = student("Ana"), student("Bo", private=True)
    board = teacher_board()
    start_tiny_run(ana, iterations=40)
    start_tiny_run(bo, iterations=40)
    deadline = time.time() + 60
    while time.time() < deadline and board_rows(board).empty:
        time.sleep(0.5)
    rows = board_rows(board)
    assert list(rows["Student"]) == ["Ana"]  # live: listed while it trains (or queued), Bo's private run never
    wait_for_training(ana), wait_for_training(bo)
    time.sleep(0.5)
    rows = board_rows(board)
    assert list(rows["Student"]) == ["Ana"] and list(rows["State"]) == ["finished"]
    nll = ana.session_state["models"]["8gaussians (trained)"].test_nll
    assert rows["Test NLL"].iloc[0] == nll and rows["Gap to entropy"].iloc[0] == nll - datasets.entropy("8gaussians")
    assert rows["Density"].iloc[0].startswith("data:image/png;base64,")
    # a rename shows at once; going private takes the run off the board, going public again brings it back
    ana.sidebar.text_input(key="class_name_input").set_value("Ana M.").run()
    assert list(board_rows(board)["Student"]) == ["Ana M."]
    ana.sidebar.toggle(key="class_private_input").set_value(True).run()
    assert board_rows(board).empty
    ana.sidebar.toggle(key="class_private_input").set_value(False).run()
    assert list(board_rows(board)["Student"]) == ["Ana M."]
    # on the projector: a copy of Ana's model in the teacher's session, drawn; Ana keeps hers
    select_rows(board, [0])
    next(b for b in board.button if b.key == "board_project").click().run()
    no_errors(board)
    projected = [name for name in board.session_state["models"] if name.endswith("(class)")]
    assert projected == ["Ana M.: 8gaussians (class)"]
    assert any(chart.key == f"board_projected_{projected[0]}" for chart in board.get("plotly_chart"))
    assert "8gaussians (trained)" in ana.session_state["models"]
    board.query_params["projector"] = "true"
    board.run()
    no_errors(board)
    assert len(board.get("plotly_chart")) == 1 and not board.dataframe  # the projected run alone


def test_a_sent_link_reaches_every_student_until_dismissed_and_a_new_one_replaces_it():
    first, second = open_app(), open_app()
    board = teacher_board()
    form_input = next(t for t in board.text_input if t.label == "Send the class a link")
    form_input.set_value("http://somewhere.example:9999/lecture?step=adjoint&teacher=leak")
    next(b for b in board.button if b.label == "Send to the class").click().run()
    no_errors(board)
    time.sleep(1.1)  # a student's page reads the link at most once a second
    for at in (first, second):
        at.run()
        no_errors(at)
        assert any("Your teacher sent a link: **Lecture 12** (`/lecture?step=adjoint`)" in m.value for m in at.markdown)
        (link,) = [link for link in at.get("page_link") if link.proto.label == "Open it"]
        assert link.proto.page == "lecture" and link.proto.query_string == "step=adjoint" and not link.proto.external
    next(b for b in first.button if b.label == "Dismiss").click().run()
    assert not any("Your teacher sent a link" in m.value for m in first.markdown)
    assert any("Your teacher sent a link" in m.value for m in second.markdown)
    form_input = next(t for t in board.text_input if t.label == "Send the class a link")
    form_input.set_value("/train")
    next(b for b in board.button if b.label == "Send to the class").click().run()
    time.sleep(1.1)
    first.run()
    assert any("**Train** (`/train`)" in m.value for m in first.markdown)  # a new link shows again after a dismissal
    assert not any("Your teacher sent a link" in m.value for m in board.markdown)  # the teacher sees no banner
    next(b for b in board.button if b.key == "board_withdraw_link").click().run()
    time.sleep(1.1)
    second.run()
    assert not any("Your teacher sent a link" in m.value for m in second.markdown)  # taken down everywhere


def test_the_table_filters_by_dataset_and_setting_and_groups_rows():
    from cnf_core.classroom import RunRecord
    from ui.board import Filters, board_table

    def run(key, name, dataset, objective, nll):
        return RunRecord(key=key, owner=key, name=name, dataset=dataset, objective=objective, solver="euler", state="finished", iteration=1, seconds=1.0, started=0.0, nll=nll)

    records = [run("a", "Ana", "rings", "flow matching", 3.0), run("b", "Bo", "moons", "maximum likelihood", 2.5), run("c", "Cy", "rings", "maximum likelihood", 2.9)]
    assert list(board_table(records)["Student"]) == ["Bo", "Cy", "Ana"]  # best test NLL first
    assert list(board_table(records, Filters(group="dataset"))["Student"]) == ["Bo", "Cy", "Ana"]  # moons, then rings by NLL
    assert list(board_table(records, Filters(group="setting"))["Student"]) == ["Ana", "Bo", "Cy"]  # flow matching first
    assert list(board_table(records, Filters(datasets=("rings",)))["Student"]) == ["Cy", "Ana"]
    assert list(board_table(records, Filters(datasets=("rings",), settings=("flow matching · euler",)))["Student"]) == ["Ana"]
    assert board_table([]).empty
