from gradienthide.stages.report import aggregate
from gradienthide.workflow import run_stage

run_stage(snakemake, aggregate)
