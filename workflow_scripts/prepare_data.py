from gradienthide.stages.data import prepare_data
from gradienthide.workflow import run_stage

run_stage(snakemake, prepare_data)
