"""waitress's threads, the most recently idle woken first: requests one after another are
served by the same thread, whatever the thread count, where waitress's own dispatcher hands
them to each thread in turn."""

from __future__ import annotations

import threading

from waitress.task import ThreadedTaskDispatcher

from proxy.serving.dispatch import RecentFirst, dispatcher


class Named:
    """A task that notes the thread that served it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.by = ""

    def service(self) -> None:
        self.by = threading.current_thread().name
        self.done.set()


def served_by(tasks: ThreadedTaskDispatcher, count: int) -> set:
    names = set()
    for _ in range(count):
        task = Named()
        tasks.add_task(task)
        assert task.done.wait(10)
        names.add(task.by)
    return names


def waited(tasks: ThreadedTaskDispatcher, threads: int) -> None:
    """Once every thread waits for a task."""
    deadline = threading.Event()
    while True:
        with tasks.lock:
            if len(tasks.queue_cv._waiters) == threads:
                return
        deadline.wait(0.01)


def test_tasks_one_after_another_are_served_by_the_thread_that_last_went_idle():
    tasks = dispatcher(32)
    try:
        waited(tasks, 32)
        assert len(served_by(tasks, 64)) <= 2  # the one serving, and the one it woke
    finally:
        tasks.shutdown()


def test_waitress_own_dispatcher_hands_them_to_each_thread_in_turn():
    tasks = ThreadedTaskDispatcher()
    tasks.set_thread_count(32)
    try:
        waited(tasks, 32)
        assert len(served_by(tasks, 64)) >= 16
    finally:
        tasks.shutdown()


def test_a_notify_of_every_waiter_wakes_them_all_and_stops_the_threads():
    tasks = dispatcher(8)
    waited(tasks, 8)
    tasks.shutdown(timeout=10)
    assert type(tasks.queue_cv) is RecentFirst and not tasks.threads  # none left behind
