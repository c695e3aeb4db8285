from gradienthide.stages.train import train_defense
from gradienthide.workflow import run_stage

run_stage(snakemake, train_defense)
