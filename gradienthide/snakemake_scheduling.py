"""Snakemake selects jobs when one ends, instead of once a second for every job finished so far.

Snakemake 9 (read in snakemake/scheduling/job_scheduler.py, 9.27.1) ends each pass of its
scheduling loop by starting a `threading.Timer` that triggers another pass one rate-limit
timespan later (--max-jobs-per-timespan, 100/1s by default), so that jobs the rate limit held
back start once it allows. That pass starts its own timer, and every finished job adds a pass:
after n finished jobs the loop runs about n times a second, and each pass reads the size of
every ready job's inputs and resets their params. During the CIFAR-10 verdict run the
Snakemake process used a quarter of a core that way, on a 2-core machine (docs/results.md).
A day-long timespan stops the polling, but the timers are not daemon threads: the finished
run then waits for them instead of exiting.

`keep_one_reevaluation_timer()` keeps what the timer is for and drops the multiplication: at
most one re-evaluation is pending at a time (an earlier pass that finds the rate limit still
reached asks again), and its timer is a daemon thread, so a finished run exits at once. The
Snakefile calls it; with a Snakemake that has no such method it changes nothing.
"""

from __future__ import annotations

import threading

PATCHED_METHOD = "_schedule_reevalutation"  # Snakemake's spelling


def keep_one_reevaluation_timer(scheduler_class=None) -> bool:
    """Replace `scheduler_class`'s re-evaluation timer (Snakemake's JobScheduler by default)
    with one that keeps at most one pending daemon timer per scheduler. Returns whether the
    class has the method (and is now patched); idempotent."""
    if scheduler_class is None:
        try:
            from snakemake.scheduling.job_scheduler import JobScheduler as scheduler_class
        except ImportError:  # a Snakemake laid out otherwise: leave it as it is
            return False
    original = getattr(scheduler_class, PATCHED_METHOD, None)
    if original is None:
        return False
    if getattr(original, "keeps_one_timer", False):
        return True
    lock = threading.Lock()

    def schedule_reevaluation(self, delay) -> None:
        with lock:
            if getattr(self, "_pending_reevaluation", None) is not None:
                return  # a pass comes sooner anyway, and asks again if it still has to

            def reevaluate():
                with lock:  # cleared before the pass it triggers, so that pass can ask for the next
                    self._pending_reevaluation = None
                self._open_jobs.release()

            timer = threading.Timer(delay, reevaluate)
            timer.daemon = True
            self._pending_reevaluation = timer
        timer.start()

    schedule_reevaluation.keeps_one_timer = True
    setattr(scheduler_class, PATCHED_METHOD, schedule_reevaluation)
    return True
