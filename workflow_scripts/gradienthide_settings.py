from gradienthide.stages.report import gradienthide_settings
from gradienthide.workflow import run_stage

run_stage(snakemake, gradienthide_settings)
