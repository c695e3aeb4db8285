from gradienthide.stages.report import psnr_by_batch_size
from gradienthide.workflow import run_stage

run_stage(snakemake, psnr_by_batch_size)
