from gradienthide import stages
from gradienthide.workflow import start_job

start_job(snakemake)
stages.prepare_data(snakemake.params.data, snakemake.params.seed, snakemake.output.dataset, snakemake.output.splits)
