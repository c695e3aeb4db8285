from gradienthide.stages.evaluate import evaluate_shard
from gradienthide.workflow import run_stage

run_stage(snakemake, evaluate_shard)
