"""The Train page under Streamlit's AppTest: a live run, per-session state, refusals, a shared address."""

import json
import time

from app_tools import no_errors, open_app

from cnf_core.cli import build_parser, train_config
from cnf_core.training import TrainConfig


def wait_for_training(at, timeout=120):
    run = at.session_state["runs"][-1]
    deadline = time.time() + timeout
    while run.active and time.time() < deadline:
        time.sleep(0.2)
    assert not run.active
    at.run()
    return run


def start_tiny_run(at, iterations=3):
    next(n for n in at.number_input if n.label == "Iterations").set_value(iterations)
    at.slider[0].set_value(1)  # one hidden layer
    next(b for b in at.button if b.label == "Start").click()
    at.run()


def test_train_page_trains_a_model_that_becomes_active():
    at = open_app("pages/train.py")
    no_errors(at)
    assert [b.label for b in at.button][:3] == ["Start", "Stop", "Resume"]
    start_tiny_run(at)
    run = wait_for_training(at)
    at.run()
    no_errors(at)
    assert run.state == "finished" and run.iteration == 3
    trained = [name for name in at.session_state["models"] if "(trained)" in name]
    assert trained == ["8gaussians (trained)"]
    assert at.session_state["active_model"] == "8gaussians (trained)"
    assert any("test NLL" in s.value for s in at.success)
    # a second run without RNODE's regularisers: both runs listed with what they cost
    for label in ("Kinetic energy weight", "Jacobian norm weight"):
        next(n for n in at.number_input if n.label == label).set_value(0.0)
    start_tiny_run(at)
    wait_for_training(at)
    at.run()
    no_errors(at)
    runs = at.dataframe[0].value
    assert list(runs["model"]) == ["8gaussians (trained)", "8gaussians (trained) #2"]
    default = TrainConfig().kinetic_weight
    assert default > 0 and list(runs["kinetic"]) == [default, 0.0] and list(runs["Jacobian"]) == [TrainConfig().jacobian_weight, 0.0]
    assert (runs["NFE per dopri5 solve"] > 0).all() and (runs["test NLL"] > 0).all()


def test_two_sessions_keep_separate_state():
    first, second = open_app("pages/train.py"), open_app("pages/train.py")
    start_tiny_run(first, iterations=2)
    wait_for_training(first)
    first.run()
    assert any("(trained)" in name for name in first.session_state["models"])
    second.run()
    assert not any("(trained)" in name for name in second.session_state["models"])
    assert second.session_state["active_model"] == "8gaussians (pretrained)"
    assert second.session_state["runs"] == []


def test_bad_settings_are_refused_with_a_message_and_nothing_starts():
    at = open_app("pages/train.py")
    at.selectbox(key="train_dataset").set_value("Upload a CSV…")
    at.run()
    at.file_uploader[0].set_value(("bad.csv", b"x,y\n1,abc\n", "text/csv"))
    at.run()
    assert not at.exception
    assert any("bad.csv" in e.value for e in at.error)
    start = next(b for b in at.button if b.label == "Start")
    assert start.disabled
    assert at.session_state["active_model"] == "8gaussians (pretrained)"


def test_a_shared_address_restores_the_settings_and_model():
    at = open_app(params={"model": "moons (pretrained)", "train_width_1": "128", "train_lr": "0.003", "train_method": "euler", "train_steps": "7", "train_depth": "99"})
    assert at.session_state["active_model"] == "moons (pretrained)"
    at.switch_page("pages/train.py")
    at.run()
    no_errors(at)
    assert (at.select_slider(key="train_width_1").value, at.select_slider(key="train_width_2").value) == (128, 32)
    assert abs(at.number_input(key="train_lr").value - 0.003) < 1e-12
    assert at.selectbox(key="train_method").value == "euler"
    assert at.number_input(key="train_steps").value == 7
    assert at.slider(key="train_depth").value == 2  # 99 is out of range: ignored, default kept
    # the browser writes every change back into the address: tests/test_address_browser.py


def test_each_layer_has_its_width_and_an_old_one_width_address_names_the_same_network():
    at = open_app("pages/train.py", {"train_depth": "3", "train_width": "16"})  # a link from before each layer had its width
    no_errors(at)
    assert [at.select_slider(key=f"train_width_{layer}").value for layer in (1, 2, 3)] == [16, 16, 16]
    assert "train_width" not in at.query_params and at.query_params["train_width_3"] == "16"  # the address names the network at once
    at.slider(key="train_depth").set_value(4).run()
    at.select_slider(key="train_width_2").set_value(128).run()
    no_errors(at)
    assert [at.select_slider(key=f"train_width_{layer}").value for layer in (1, 2, 3, 4)] == [16, 128, 16, 32]  # a new layer: the default's last width
    next(n for n in at.number_input if n.label == "Iterations").set_value(3)
    next(b for b in at.button if b.label == "Start").click().run()
    assert at.session_state["runs"][-1].config.field.hidden == (16, 128, 16, 32)


def test_an_old_width_the_sliders_cannot_take_is_dropped_and_the_defaults_shown():
    at = open_app("pages/train.py", {"train_width": "100", "train_depth": "9"})
    no_errors(at)
    from cnf_core.training import TrainConfig

    assert [s.value for s in at.select_slider if s.key.startswith("train_width_")] == list(TrainConfig().field.hidden)
    assert "train_width" not in at.query_params


def test_a_queued_run_shows_its_place_and_the_limits_are_refused_with_messages():
    from cnf_core.field import FieldConfig
    from cnf_core.training import TrainConfig
    from ui import state

    pool = state.training_pool()  # the server's pool, the one the page uses
    long_run = TrainConfig(field=FieldConfig(hidden=(16,)), iterations=None, seconds=60)
    blockers = [pool.submit(f"another session {i}", long_run, "8gaussians") for i in range(pool.size)]
    try:
        at = open_app("pages/train.py")
        start_tiny_run(at)
        run = at.session_state["runs"][-1]
        assert run.state == "queued"
        assert any("place **1** of 1 in the queue" in i.value for i in at.info), [i.value for i in at.info]
        # a second queued run of the same session is refused, with a message and nothing else lost
        start_tiny_run(at)
        assert any("already have a run waiting" in e.value for e in at.error)
        assert len(at.session_state["runs"]) == 1
        # Stop takes the waiting run out of the queue
        next(b for b in at.button if b.label == "Stop").click()
        at.run()
        assert run.state == "cancelled" and any("stopped before it started" in w.value for w in at.warning)
        assert not any("(trained)" in name for name in at.session_state["models"])
    finally:
        for blocker in blockers:
            pool.stop(blocker)


def test_a_finished_run_replays_its_kept_weights_next_to_the_loss_curve():
    at = open_app("pages/train.py")
    start_tiny_run(at, iterations=30)
    wait_for_training(at)
    at.run()
    no_errors(at)
    replay = next(s for s in at.select_slider if s.key == "train_replay")
    assert replay.options == ["25", "30"] and replay.value == 30

    def shown():
        charts = {chart.key: chart for chart in at.get("plotly_chart")}
        density, loss = (json.loads(charts[key].proto.spec) for key in ("train_snapshot", "train_loss"))
        return density["layout"]["title"]["text"], [shape["x0"] for shape in loss["layout"]["shapes"] if shape.get("x0") == shape.get("x1")]

    assert shown() == ("Density and samples at iteration 30", [30])
    replay.set_value(25).run()
    no_errors(at)
    assert shown() == ("Density and samples at iteration 25", [25])


def test_the_command_lines_train_is_what_start_does_with_the_pages_defaults():
    at = open_app("pages/train.py")
    no_errors(at)
    shown = {w.key: w.value for w in at.main if getattr(w, "key", None) and hasattr(w, "value")}
    cli = train_config(build_parser().parse_args(["train", "--out", "model.pt"]))
    assert cli == train_config(build_parser().parse_args(["train", "--dataset", shown["train_dataset"], "--iters", str(shown["train_iterations"]), "--out", "m.pt"]))
    assert (shown["train_budget_kind"], shown["train_iterations"], shown["train_seed"]) == ("Iterations", cli.iterations, cli.seed)
    assert (shown["train_dataset"], shown["train_objective"], shown["train_trace"]) == (cli.dataset, cli.objective, cli.trace)
    layers = tuple(int(shown[f"train_width_{layer}"]) for layer in range(1, shown["train_depth"] + 1))
    assert (layers, shown["train_activation"]) == (cli.field.hidden, cli.field.activation)
    assert f"train_width_{shown['train_depth'] + 1}" not in shown
    assert (shown["train_batch"], shown["train_lr"], shown["train_weight_decay"]) == (cli.batch_size, cli.lr, cli.weight_decay)
    assert (shown["train_kinetic_weight"], shown["train_jacobian_weight"]) == (cli.kinetic_weight, cli.jacobian_weight)
    assert (shown["train_method"], shown["train_steps"], shown["train_adjoint"]) == (cli.solver.method, round(1 / cli.solver.step_size), cli.solver.adjoint)
    assert shown["train_vary_steps"] == cli.vary_steps
    assert cli.objective == "mle" and cli.seconds is None
