"""The pipeline's stages, one module per rule: plain functions that a workflow script calls
with the rule's named inputs, outputs and params as keyword arguments (see
gradienthide.workflow.run_stage).

They read and write files only through the paths they are given, so tests can run any
stage without Snakemake. Each module imports only what its stage needs, to keep the
start-up of the many small jobs short.
"""
