from gradienthide import stages
from gradienthide.workflow import start_job

start_job(snakemake)
stages.evaluate_shard(snakemake.input.reconstructions, snakemake.input.private, snakemake.input.index,
                      snakemake.params.identity, snakemake.output.metrics, snakemake.output.grid)
