"""Snakemake's scheduling loop re-evaluates on one pending daemon timer at most
(gradienthide.snakemake_scheduling): many requests start one timer, its firing wakes the loop
once and lets the next request start a new one, and a finished run never waits for it."""

import threading
import time

from gradienthide.snakemake_scheduling import PATCHED_METHOD, keep_one_reevaluation_timer


class FakeScheduler:
    """What the patched method touches of Snakemake's JobScheduler: the loop's semaphore."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)

    def _schedule_reevalutation(self, delay):  # Snakemake's own: a new timer per call
        threading.Timer(delay, lambda: self._open_jobs.release()).start()


def _live_timers() -> int:
    return sum(isinstance(thread, threading.Timer) and thread.is_alive() for thread in threading.enumerate())


def _wakeups(semaphore) -> int:
    count = 0
    while semaphore.acquire(blocking=False):
        count += 1
    return count


def test_many_requests_start_one_daemon_timer_and_wake_the_loop_once():
    class Scheduler(FakeScheduler):
        pass

    assert keep_one_reevaluation_timer(Scheduler)
    scheduler = Scheduler()
    timers_before = _live_timers()
    for _ in range(50):  # one per pass of the loop, as after 50 finished jobs
        scheduler._schedule_reevalutation(0.2)
    timer = scheduler._pending_reevaluation
    assert timer.daemon
    assert _live_timers() == timers_before + 1
    timer.join(2)
    time.sleep(0.05)
    assert _wakeups(scheduler._open_jobs) == 1
    assert scheduler._pending_reevaluation is None
    scheduler._schedule_reevalutation(0.05)  # the pass it woke asks again: a new timer
    scheduler._pending_reevaluation.join(2)
    time.sleep(0.05)
    assert _wakeups(scheduler._open_jobs) == 1


def test_patching_is_idempotent_and_leaves_a_class_without_the_method_alone():
    class Scheduler(FakeScheduler):
        pass

    assert keep_one_reevaluation_timer(Scheduler)
    patched = getattr(Scheduler, PATCHED_METHOD)
    assert keep_one_reevaluation_timer(Scheduler)
    assert getattr(Scheduler, PATCHED_METHOD) is patched

    class Unrelated:
        pass

    assert not keep_one_reevaluation_timer(Unrelated)
    assert not hasattr(Unrelated, PATCHED_METHOD)


def test_the_installed_snakemake_has_the_method_the_fix_replaces():
    # fails when a Snakemake upgrade renames or moves it: then the fix silently no longer applies
    from snakemake.scheduling.job_scheduler import JobScheduler

    assert keep_one_reevaluation_timer()
    assert getattr(JobScheduler, PATCHED_METHOD).keeps_one_timer
