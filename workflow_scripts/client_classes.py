from gradienthide.stages.report import client_classes_figure
from gradienthide.workflow import run_stage

run_stage(snakemake, client_classes_figure)
