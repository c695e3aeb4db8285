from gradienthide.archive import create_archive
from gradienthide.workflow import run_stage

run_stage(snakemake, create_archive)
