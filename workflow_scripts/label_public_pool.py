from gradienthide.stages.labels import label_public_pool
from gradienthide.workflow import run_stage

run_stage(snakemake, label_public_pool)
