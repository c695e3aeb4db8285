from gradienthide.stages.evaluate import evaluate_probe_shards
from gradienthide.workflow import run_stage

run_stage(snakemake, evaluate_probe_shards)
