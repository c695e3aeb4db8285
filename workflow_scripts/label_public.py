from gradienthide.stages.labels import label_public
from gradienthide.workflow import run_stage

run_stage(snakemake, label_public)
