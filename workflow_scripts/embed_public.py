from gradienthide.stages.labels import embed_public
from gradienthide.workflow import run_stage

run_stage(snakemake, embed_public)
