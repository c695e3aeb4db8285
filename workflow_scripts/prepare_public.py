from gradienthide.stages.data import prepare_public
from gradienthide.workflow import run_stage

run_stage(snakemake, prepare_public)
