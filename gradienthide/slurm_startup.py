"""Snakemake starts without waiting on SLURM.

Snakemake imports every installed executor plugin when it starts, whatever the executor, and
the SLURM plugin (snakemake-executor-plugin-slurm 2.8), while it is imported, runs
`scontrol show config` to word the help text of its --slurm-status-command option (whether
MinJobAge suits squeue). Where the SLURM client is installed but no controller answers, scontrol
retries for about 9 s before it gives up: every snakemake command, local runs and dry runs
included, waited that long.

`install()` (run at interpreter start by the .pth file scripts/setup.sh writes into .venv) lets
the plugin's import skip that one probe; the help then says sacct will be used. Nothing else
changes: the plugin loads as usual, and when jobs go to SLURM (`--profile slurm`) its
validation and job-status checks still read MinJobAge from scontrol.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys

PLUGIN = "snakemake_executor_plugin_slurm"
PROBE_MODULE = f"{PLUGIN}.job_status_query"
PROBE = "should_recommend_squeue_status_command"  # called at import only, for the help text
# the .pth line: nothing happens (and no error is printed at every start) once gradienthide is uninstalled
PTH_LINE = ('import importlib.util as _u; _u.find_spec("gradienthide") and '
            '__import__("gradienthide.slurm_startup").slurm_startup.install()\n')


def _without_probe(*, exec_module):
    """The plugin's exec_module, with the probe answering "no" while the package body runs."""

    def run(module):
        queries = importlib.import_module(PROBE_MODULE)  # the package is in sys.modules already
        probe = getattr(queries, PROBE, None)
        if probe is None:  # another plugin version: leave it as it is
            return exec_module(module)
        setattr(queries, PROBE, lambda *args, **kwargs: False)
        try:
            exec_module(module)
        finally:
            setattr(queries, PROBE, probe)
            if hasattr(module, PROBE):
                setattr(module, PROBE, probe)

    return run


class _PluginFinder:
    """Finds the plugin package as Python would, and wraps its loader."""

    def find_spec(self, name, path=None, target=None):
        if name != PLUGIN:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader.exec_module = _without_probe(exec_module=spec.loader.exec_module)
        return spec


def install() -> None:
    if PLUGIN not in sys.modules and not any(isinstance(finder, _PluginFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PluginFinder())
