from gradienthide import stages
from gradienthide.workflow import start_job

device = start_job(snakemake)
stages.label_public_pool(snakemake.params.labels, snakemake.input.dataset, snakemake.input.splits,
                         snakemake.output.labels, snakemake.output.pool, device)
