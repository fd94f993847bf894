"""The job runner on its own: results, replacement, cancellation, errors, the model lock."""

from __future__ import annotations

import threading
import time

from segexplorer.engine.errors import UserError
from segexplorer.engine.jobs import check_cancelled
from segexplorer.gui.jobs import JobRunner


def _sleepy(value, seconds=0.05, steps=4):
    def fn(state):
        for i in range(steps):
            check_cancelled(state)
            state.set_progress(i, steps, f"step {i}")
            time.sleep(seconds / steps)
        return value

    return fn


def test_result_reaches_callback_on_main_thread(qtbot):
    runner = JobRunner()
    got = []
    runner.submit("c", _sleepy(42), on_result=lambda r: got.append(
        (r, threading.current_thread() is threading.main_thread())), uses_model=False)
    qtbot.waitUntil(lambda: bool(got) and runner.live_thread_count() == 0, timeout=5000)
    assert got == [(42, True)]


def test_new_request_replaces_old_and_stale_result_is_dropped(qtbot):
    runner = JobRunner()
    got = []
    runner.submit("c", _sleepy("old", 0.4, 8), on_result=got.append, uses_model=False)
    runner.submit("c", _sleepy("new"), on_result=got.append, uses_model=False)
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert got == ["new"]


def test_fifty_rapid_requests_deliver_only_the_last_and_threads_return_to_idle(qtbot):
    runner = JobRunner()
    got = []
    for i in range(50):
        runner.submit("c", _sleepy(i, 0.02), on_result=got.append, uses_model=False)
    assert runner.live_thread_count() <= 1
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=10000)
    assert got == [49]
    assert runner.live_thread_count() == 0
    assert runner.started_count <= 3  # the first one, then only the latest pending


def test_cancel_stops_between_chunks_and_never_delivers(qtbot):
    runner = JobRunner()
    got, cancelled = [], []
    runner.submit("c", _sleepy("x", 5.0, 100), on_result=got.append,
                  on_cancelled=lambda: cancelled.append(True), uses_model=False)
    qtbot.waitUntil(lambda: runner.live_thread_count() == 1, timeout=2000)
    start = time.monotonic()
    runner.cancel("c")
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=3000)
    assert time.monotonic() - start < 1.0
    assert got == [] and cancelled == [True]


def test_user_errors_and_bugs_are_forwarded_as_messages(qtbot):
    runner = JobRunner()
    errors = []

    def user_error(state):
        raise UserError("Bad   input,\n fix it.")

    def bug(state):
        raise KeyError("oops")

    runner.submit("a", user_error, on_error=lambda m, d: errors.append((m, d)),
                  uses_model=False)
    runner.submit("b", bug, on_error=lambda m, d: errors.append((m, d)), uses_model=False)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=5000)
    errors.sort(key=lambda e: e[0].startswith("KeyError"))
    assert errors[0] == ("Bad input, fix it.", "")  # UserError: its one line, no traceback
    assert errors[1][0] == "KeyError: 'oops'" and "Traceback" in errors[1][1]


def test_progress_is_reported_for_the_current_job(qtbot):
    runner = JobRunner()
    seen = []
    runner.progress.connect(lambda ch, done, total, msg: seen.append((ch, done, total)))
    runner.submit("c", _sleepy(1, 0.2, 4), uses_model=False)
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert seen and seen[0][0] == "c" and all(total == 4 for _, _, total in seen)


def test_model_lock_serialises_and_a_lending_job_lets_others_run_first(qtbot):
    runner = JobRunner()
    order = []
    inside = threading.Event()
    active = []

    def long_job(state):
        for _ in range(40):
            check_cancelled(state)  # lends the lock between chunks
            active.append("long")
            assert active.count("long") - active.count("/long") == 1
            inside.set()
            time.sleep(0.02)
            active.append("/long")
        order.append("long done")
        return "long"

    def short_job(state):
        # Never runs while the long job is inside a chunk.
        assert active.count("long") == active.count("/long")
        order.append("short done")
        return "short"

    runner.submit("sweep", long_job, lends_model=True)
    assert inside.wait(5)
    runner.submit("gradcam", short_job)
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=10000)
    assert order == ["short done", "long done"]


def test_shutdown_cancels_and_waits(qtbot):
    runner = JobRunner()
    runner.submit("c", _sleepy("x", 10.0, 1000), uses_model=False)
    qtbot.waitUntil(lambda: runner.live_thread_count() == 1, timeout=2000)
    start = time.monotonic()
    assert runner.shutdown(1.5)
    assert time.monotonic() - start < 1.5
    assert runner.live_thread_count() == 0
    assert runner.submit("c", _sleepy("y")) == 0  # nothing starts after shutdown
