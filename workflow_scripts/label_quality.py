from gradienthide.stages.labels import label_quality
from gradienthide.workflow import run_stage

run_stage(snakemake, label_quality)
