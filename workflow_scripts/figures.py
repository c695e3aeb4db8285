from gradienthide.stages.report import figures
from gradienthide.workflow import run_stage

run_stage(snakemake, figures)
