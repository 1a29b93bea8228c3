"""The training pool: worker processes, a first-come-first-served queue, Stop/Resume, lost workers, closed sessions, limits."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnf_core.errors import ConfigError
from cnf_core.field import FieldConfig
from cnf_core.pool import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, STOPPED, PoolRefusal, PoolSettings, Run, TrainingPool, start_estimates
from cnf_core.training import TrainConfig, Trainer

TINY = TrainConfig(field=FieldConfig(hidden=(16,)), iterations=20, lr_schedule="constant")
LONG = TINY.replace(iterations=None, seconds=25)  # runs until stopped (within the test pools' caps)


def wait_for(condition, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pool():
    pool = TrainingPool(PoolSettings(workers=2))
    yield pool
    pool.shutdown()


@pytest.fixture
def one_worker():
    pool = TrainingPool(PoolSettings(workers=1, max_queue=2, max_run_iterations=1000, max_run_seconds=30))
    yield pool
    pool.shutdown()


def test_start_estimates_are_list_scheduling_over_the_workers():
    # two workers free in 10 s and 4 s; runs of 5, 5, 20 s queue up
    assert start_estimates([10.0, 4.0], [5.0, 5.0, 20.0]) == [4.0, 9.0, 10.0]
    assert start_estimates([0.0], [3.0, 3.0]) == [0.0, 3.0]
    assert start_estimates([], [1.0]) == [0.0]
    # the first in line waits 8 s for its owner's own run; the free workers take the others meanwhile
    assert start_estimates([0.0, 8.0], [5.0, 2.0, 2.0], [8.0, 0.0, 0.0]) == [8.0, 0.0, 2.0]
    # nobody may start before 3 s: the run that may start soonest goes first
    assert start_estimates([0.0], [1.0, 1.0], [5.0, 3.0]) == [5.0, 3.0]


def test_runs_train_in_workers_and_come_back_as_models(pool):
    runs = [pool.submit(f"owner-{i}", TINY, "8gaussians") for i in range(3)]
    wait_for(lambda: not any(run.active for run in runs), what="three runs")
    for run in runs:
        assert isinstance(run, Run) and run.state == FINISHED and run.iteration == 20 and run.error is None
        assert [r["iteration"] for r in run.history] == list(range(1, 21))
        assert run.model is not None and run.model.info["iterations"] == 20 and run.model.info["test_nll"] > 0
        assert run.snapshot is not None and run.snapshot.samples.shape == (600, 2)
    assert runs[0].worker is None and pool.status()["busy"] == 0
    # a run trained in a worker is the run trained here: same seed, same weights
    here = Trainer(TINY).run()
    for name, value in here.field.state_dict().items():
        torch.testing.assert_close(runs[0].model.field.state_dict()[name], value)


def test_queue_is_first_come_first_served_with_places_and_start_estimates(one_worker):
    first = one_worker.submit("a", LONG, "first")
    wait_for(lambda: first.state == RUNNING and first.progress is not None, what="the first run to train")
    second = one_worker.submit("b", TINY, "second")
    third = one_worker.submit("c", TINY, "third")
    assert (second.state, third.state) == (QUEUED, QUEUED)
    assert one_worker.place(second) == (1, 2) and one_worker.place(third) == (2, 2)
    assert one_worker.place(first) is None
    wait_second, wait_third = one_worker.expected_start(second), one_worker.expected_start(third)
    assert 0 < wait_second < wait_third  # behind the long run, then behind the second as well
    pace = one_worker.status()  # the second's length: its 20 iterations at the pool's pace, plus the time around them
    assert wait_third - wait_second == pytest.approx(TINY.iterations / pace["iterations_per_second"] + pace["overhead_seconds"], rel=0.2)
    one_worker.stop(first)
    wait_for(lambda: not third.active, what="the queue to drain")
    assert first.state == STOPPED and "stopped by the user" in first.message and first.model is not None
    assert second.started_at < third.started_at and second.state == third.state == FINISHED


def test_stop_and_resume_through_the_pool(pool):
    run = pool.submit("resumer", LONG, "8gaussians")
    wait_for(lambda: run.iteration >= 5, what="a few iterations")
    pool.stop(run)
    wait_for(lambda: not run.active, what="the run to stop")
    assert run.state == STOPPED and run.model is not None and run.trainer_state is not None
    stopped_at = run.iteration
    assert run.model.info["iterations"] == stopped_at
    more = pool.submit("resumer", LONG, "8gaussians", iterations=7, resume=run)
    assert more.history == run.history  # the continuation starts with its predecessor's record
    wait_for(lambda: not more.active, what="the resumed run")
    assert more.state == FINISHED and more.iteration == stopped_at + 7
    assert [r["iteration"] for r in more.history] == list(range(1, stopped_at + 8))
    # continuing in a worker is training on without a break: same weights as one run of that many iterations
    straight = Trainer(TINY).run(iterations=stopped_at + 7)
    for name, value in straight.field.state_dict().items():
        torch.testing.assert_close(more.model.field.state_dict()[name], value)


def test_a_queued_run_stops_before_it_starts(one_worker):
    blocker = one_worker.submit("a", LONG, "blocker")
    waiting = one_worker.submit("b", TINY, "waiting")
    one_worker.stop(waiting)
    assert waiting.state == CANCELLED and not waiting.active and one_worker.place(waiting) is None
    one_worker.stop(blocker)
    wait_for(lambda: not blocker.active)


def test_a_killed_worker_fails_its_run_at_its_iteration_and_is_replaced(pool):
    run = pool.submit("victim", LONG, "8gaussians")
    wait_for(lambda: run.iteration >= 3, what="a few iterations")
    lost_before = pool.status()["lost_workers"]
    os.kill(pool.worker_pid(run), signal.SIGKILL)
    wait_for(lambda: not run.active, what="the pool to notice")
    assert run.state == FAILED and run.model is None
    assert f"at iteration {run.iteration}" in run.error and "other models are kept" in run.error
    assert pool.status()["lost_workers"] == lost_before + 1
    again = pool.submit("victim", TINY, "8gaussians")  # the replacement takes new work
    wait_for(lambda: not again.active, what="a run on the replaced worker")
    assert again.state == FINISHED and pool.status()["workers"] == 2


def test_a_closed_session_stops_its_run_and_leaves_the_queue():
    gone = set()
    pool = TrainingPool(PoolSettings(workers=1, disconnect_grace=0), owner_alive=lambda owner: owner not in gone)
    try:
        running = pool.submit("tab", LONG, "8gaussians")
        wait_for(lambda: running.iteration >= 2, what="the run to train")
        other = pool.submit("other tab", LONG, "8gaussians")
        gone.add("tab")
        wait_for(lambda: not running.active, what="the orphan to stop")
        assert running.abandoned and running.state == STOPPED and running.model is None
        wait_for(lambda: other.state == RUNNING, what="the next run to start")
        queued = pool.submit("tab2", TINY, "8gaussians")
        gone.add("tab2")
        wait_for(lambda: not queued.active, what="the queued orphan to leave")
        assert queued.state == CANCELLED and queued.iteration == 0
        pool.stop(other)
        wait_for(lambda: not other.active)
    finally:
        pool.shutdown()


def test_a_session_that_reconnects_within_the_grace_period_keeps_its_run():
    gone = set()
    pool = TrainingPool(PoolSettings(workers=1, disconnect_grace=3), owner_alive=lambda owner: owner not in gone)
    try:
        run = pool.submit("laptop", LONG, "8gaussians")
        wait_for(lambda: run.iteration >= 2, what="the run to train")
        gone.add("laptop")  # its connection drops for two seconds ...
        time.sleep(2.0)
        gone.discard("laptop")  # ... and comes back to the same session
        time.sleep(2.5)  # past the grace period counted from the first drop: a new drop starts a new count
        assert run.state == RUNNING and not run.abandoned
        gone.add("laptop")  # now it stays away
        dropped_at = time.monotonic()
        wait_for(lambda: not run.active, what="the orphan to stop")
        assert time.monotonic() - dropped_at >= 3.0
        assert run.abandoned and run.state == STOPPED and run.model is None
    finally:
        pool.shutdown()


def test_limits_are_refused_with_messages(one_worker):
    with pytest.raises(PoolRefusal, match="at most 1,000 iterations per run"):
        one_worker.submit("a", TINY, "x", iterations=5000)
    with pytest.raises(PoolRefusal, match="at most 30 s per run"):
        one_worker.submit("a", TINY, "x", seconds=31)
    mine = one_worker.submit("a", LONG, "mine")
    wait_for(lambda: mine.state == RUNNING)
    next_one = one_worker.submit("a", TINY, "queued behind my own run")  # one running and one queued is allowed
    with pytest.raises(PoolRefusal, match="already have a run waiting"):
        one_worker.submit("a", TINY, "a third")
    one_worker.submit("b", TINY, "b")
    with pytest.raises(PoolRefusal, match="queue is full \\(2 runs waiting\\)"):
        one_worker.submit("c", TINY, "c")
    with pytest.raises(PoolRefusal, match="cannot be resumed"):
        one_worker.submit("a", TINY, "x", resume=mine)
    one_worker.stop(next_one)
    one_worker.stop(mine)
    wait_for(lambda: not mine.active)


def test_the_wall_clock_cap_stops_a_run_with_a_message():
    pool = TrainingPool(PoolSettings(workers=1, max_run_seconds=4))
    try:
        run = pool.submit("a", TINY, "8gaussians", iterations=20_000)  # minutes of work: the cap ends it
        wait_for(lambda: not run.active, timeout=60)
        assert run.state == STOPPED and "this server allows 4 s per run" in run.message
        assert 0 < run.iteration < 20_000 and run.model is not None
    finally:
        pool.shutdown()


def test_one_owner_never_trains_two_runs_at_once(pool):
    first = pool.submit("same", LONG, "first")
    second = pool.submit("same", TINY, "second")  # a worker is free, but this owner is already training
    wait_for(lambda: first.state == RUNNING)
    time.sleep(0.5)
    assert second.state == QUEUED
    pool.stop(first)
    wait_for(lambda: not second.active)
    assert second.state == FINISHED and second.started_at >= first.ended_at


def test_settings_come_from_the_environment_and_bad_values_name_their_variable():
    settings = PoolSettings.from_env({"CNF_LAB_WORKERS": "3", "CNF_LAB_MAX_QUEUE": "5", "CNF_LAB_MAX_RUN_SECONDS": "90", "CNF_LAB_DISCONNECT_GRACE": "12"})
    assert (settings.workers, settings.max_queue, settings.max_run_seconds, settings.worker_count(), settings.disconnect_grace) == (3, 5, 90.0, 3, 12.0)
    assert PoolSettings.from_env({}).worker_count() == len(os.sched_getaffinity(0))
    for environ, message in (
        ({"CNF_LAB_WORKERS": "two"}, "CNF_LAB_WORKERS: expected a number"),
        ({"CNF_LAB_WORKERS": "0"}, "CNF_LAB_WORKERS: must be between 1 and 256"),
        ({"CNF_LAB_WORKERS": "1.5"}, "CNF_LAB_WORKERS: must be a whole number"),
        ({"CNF_LAB_MAX_RUN_SECONDS": "nan"}, "CNF_LAB_MAX_RUN_SECONDS: must be a finite number"),
        ({"CNF_LAB_WORKER_NICE": "40"}, "CNF_LAB_WORKER_NICE: must be between 0 and 19"),
        ({"CNF_LAB_TRAIN_DEVICE": "tpu"}, "CNF_LAB_TRAIN_DEVICE: expected 'auto', 'cpu' or 'cuda'"),
        ({"CNF_LAB_DISCONNECT_GRACE": "-1"}, "CNF_LAB_DISCONNECT_GRACE: must be between 0 and 3600"),
    ):
        with pytest.raises(ConfigError, match=message):
            PoolSettings.from_env(environ)


def test_workers_run_at_a_lower_priority_than_the_server_in_a_scheduling_group_of_their_own(pool):
    run = pool.submit("nice", LONG, "8gaussians")
    wait_for(lambda: run.iteration >= 1, what="the worker to train (it lowers its priority before it serves)")
    pid = pool.worker_pid(run)
    assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + 10 or os.getpriority(os.PRIO_PROCESS, pid) == 19
    # a session of its own: under Linux's autogroup scheduling the server's group holds no training
    assert os.getsid(pid) == pid != os.getsid(0)
    worker_group, server_group = _autogroup(pid), _autogroup(os.getpid())
    if worker_group and server_group:  # autogroup scheduling applies (a Linux kernel with it, the root cpu cgroup)
        assert worker_group[0] != server_group[0]
        assert worker_group[-1] == "10"
    pool.stop(run)
    wait_for(lambda: not run.active)


def _autogroup(pid: int) -> list[str]:
    """A process's autogroup and its niceness, e.g. ["/autogroup-7", "nice", "10"]; empty where autogroup
    scheduling does not apply: a kernel without it, or a process in a cpu cgroup (a container), where
    the kernel prints nothing."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:  # the state field; an exited orphan may linger as a zombie until someone reaps it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_worker_leaves_when_the_server_is_killed(tmp_path):
    # The worker no longer shares the server's session: it must notice the server's end on its own.
    pid_file = tmp_path / "worker-pid"
    server = subprocess.Popen([sys.executable, "-c", (
        "import time, pathlib\n"
        "from cnf_core.pool import PoolSettings, TrainingPool\n"
        "from cnf_core.field import FieldConfig\n"
        "from cnf_core.training import TrainConfig\n"
        "pool = TrainingPool(PoolSettings(workers=1))\n"
        "run = pool.submit('a', TrainConfig(field=FieldConfig(hidden=(16,)), seconds=25, iterations=None), '8gaussians')\n"
        "while run.state != 'running': time.sleep(0.05)\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(pool.worker_pid(run)))\n"
        "time.sleep(60)\n"
    )], cwd=Path(__file__).resolve().parent.parent)
    try:
        wait_for(pid_file.exists, what="the worker to train")
        worker = int(pid_file.read_text())
        server.kill()  # no shutdown, no signal the worker could catch
        server.wait()
        wait_for(lambda: not _alive(worker), timeout=10, what="the orphaned worker to exit")
    finally:
        server.kill()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_train_on_the_gpu_several_at_once():
    settings = PoolSettings(device="cuda")
    assert settings.worker_count() >= 1
    pool = TrainingPool(settings)
    try:
        runs = [pool.submit(f"gpu-{i}", TINY.replace(device="cuda", iterations=50), "8gaussians") for i in range(pool.size)]
        wait_for(lambda: not any(r.active for r in runs), timeout=300)
        assert all(r.state == FINISHED and r.model is not None for r in runs)
        assert pool.status()["device"] == "cuda"
    finally:
        pool.shutdown()


def test_workers_import_nothing_from_the_servers_working_folder(tmp_path, monkeypatch):
    marker = tmp_path / "planted-module-ran"
    (tmp_path / "torch.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('planted')\n")
    monkeypatch.chdir(tmp_path)  # a server started in a folder another user can write
    pool = TrainingPool(PoolSettings(workers=1))
    try:
        run = pool.submit("a", TINY.replace(iterations=2), "8gaussians")
        wait_for(lambda: not run.active)
        assert run.state == FINISHED and not marker.exists()
    finally:
        pool.shutdown()


def test_a_stop_that_crosses_the_end_of_its_run_is_harmless(pool):
    from cnf_core.pool.worker import send

    run = pool.submit("late", TINY.replace(iterations=3), "8gaussians")
    wait_for(lambda: not run.active)
    lost_before = pool.status()["lost_workers"]
    for worker in pool._workers:  # what a Stop pressed just as its run ended leaves in a worker's pipe
        send(worker.connection, ("stop", run.id, False))
    after = [pool.submit(f"late {i}", TINY.replace(iterations=3), "8gaussians") for i in range(pool.size)]
    wait_for(lambda: not any(r.active for r in after))
    assert all(r.state == FINISHED for r in after) and pool.status()["lost_workers"] == lost_before
