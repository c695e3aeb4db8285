"""What every workflow script does first: logging to the rule's log file, threads, device."""

from __future__ import annotations

import logging
import sys

import torch


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' requested but torch sees no CUDA device (use 'auto' or 'cpu')")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def start_job(snakemake) -> torch.device:
    """Send logging and progress bars to the rule's log, set threads and determinism.

    Returns the torch device the job should use.
    """
    if snakemake.log:
        log_file = open(snakemake.log[0], "a", buffering=1)
        console = sys.stderr
        sys.stderr = log_file  # tqdm progress and warnings land in the rule's log

        def report_failure(kind, error, trace):
            # the traceback goes to the log; the one-line reason also to the console
            sys.__excepthook__(kind, error, trace)
            print(f"gradienthide: rule {snakemake.rule} failed: {kind.__name__}: {error}", file=console)

        sys.excepthook = report_failure
        handler = logging.StreamHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    torch.set_num_threads(max(1, int(snakemake.threads)))
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = pick_device(snakemake.config.get("device", "auto"))
    logging.getLogger("gradienthide").info("rule %s on %s with %d thread(s); wildcards %s",
                                           snakemake.rule, device, snakemake.threads, dict(snakemake.wildcards))
    return device
