from gradienthide.stages.attack import attack_probe_shards
from gradienthide.workflow import run_stage

run_stage(snakemake, attack_probe_shards)
