from gradienthide import stages
from gradienthide.workflow import start_job

start_job(snakemake)
stages.evaluate_shard(snakemake.input.reconstructions, snakemake.input.private, snakemake.input.index,
                      snakemake.params.identity, snakemake.output.metrics, snakemake.output.grid,
                      snakemake.params.metrics, snakemake.params.model, snakemake.params.clip,
                      snakemake.input.get("reference_model") or None, snakemake.input.get("dataset") or None)
