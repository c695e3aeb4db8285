"""What every workflow script does: start the job (logging to the rule's log file, threads,
device), then call its stage with the rule's named inputs, outputs and params."""

from __future__ import annotations

import inspect
import logging
import os
import random
import sys

import numpy as np
import torch

from gradienthide import manifest


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' requested but torch sees no CUDA device (use 'auto' or 'cpu')")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def use_deterministic_algorithms() -> None:
    """torch.use_deterministic_algorithms(True, warn_only=True), without its import of
    torch._inductor.config, whose only use there is to set inductor's `deterministic` flag (no
    stage compiles): about 1.5 s of a job's start. Jobs that build a torch.optim optimiser or
    import torchvision load torch._dynamo later anyway; the small jobs gain (bench/README.md,
    "Between jobs"). Where inductor is already loaded, the public call sets both."""
    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def seed_global_generators(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    # deterministic kernels (CUDA's cuBLAS needs a fixed workspace for that), and every global
    # generator seeded; stages that draw at random seed their own generators as well
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    use_deterministic_algorithms()
    # a job of one replicate (wildcard seed) seeds with that replicate's seed, others with the data seed
    seed_global_generators(int(dict(snakemake.wildcards).get("seed", snakemake.config.get("seed", 0))))
    device = pick_device(snakemake.config.get("device", "auto"))
    logging.getLogger("gradienthide").info("rule %s on %s with %d thread(s); wildcards %s",
                                           snakemake.rule, device, snakemake.threads, dict(snakemake.wildcards))
    return device


def stage_arguments(snakemake, stage) -> dict:
    """The keyword arguments `stage` takes, by name from the rule's inputs, outputs and params.

    A name must not appear twice among them. An optional input left empty ([]) is None; a
    list stays a list. Names the stage does not take (outputs declared for the DAG only) are
    not passed; a stage argument the rule does not provide fails here, naming it.
    """
    accepted = inspect.signature(stage).parameters
    provided: dict = {}
    for kind in ("input", "output", "params"):
        for name, value in getattr(snakemake, kind).items():
            if name in provided:
                raise TypeError(f"rule {snakemake.rule}: {kind} {name!r} has the name of another input, output or param")
            if isinstance(value, list):  # Snakemake's Namedlist
                value = list(value) or (None if kind == "input" else [])
            provided[name] = value
    missing = [name for name, p in accepted.items() if p.default is inspect.Parameter.empty and name not in provided
               and name != "device"]
    if missing:
        raise TypeError(f"rule {snakemake.rule}: {stage.__module__}.{stage.__name__} needs {missing}, "
                        f"which the rule does not name among its inputs, outputs or params")
    return {name: value for name, value in provided.items() if name in accepted}


def run_stage(snakemake, stage) -> None:
    """The whole of a workflow script: start the job, check its inputs against the run
    manifest, call its stage by keyword, record the sha256 of each output it wrote, and exit."""
    device = start_job(snakemake)
    out_dir = snakemake.config["output_dir"]
    inputs = manifest.check_inputs(out_dir=out_dir, inputs=list(snakemake.input))
    arguments = stage_arguments(snakemake, stage)
    if "device" in inspect.signature(stage).parameters:
        arguments["device"] = device
    stage(**arguments)
    manifest.record_outputs(out_dir=out_dir, outputs=list(snakemake.output), rule=snakemake.rule,
                            wildcards=dict(snakemake.wildcards), inputs=inputs)
    exit_without_teardown()


def exit_without_teardown() -> None:
    """End the job's process once its outputs are written, closed and recorded, skipping the
    interpreter's teardown of torch and the other loaded modules: about 0.6 s of every job
    (bench/README.md, "Between jobs"). Only a job that succeeded gets here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        stream.flush()
    os._exit(0)
