from gradienthide.stages.attack import attack_shard
from gradienthide.workflow import run_stage

run_stage(snakemake, attack_shard)
