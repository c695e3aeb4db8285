from gradienthide import stages
from gradienthide.workflow import start_job

start_job(snakemake)
stages.aggregate(snakemake.input.metrics, snakemake.input.accuracy, snakemake.input.labels or None,
                 snakemake.output.metrics, snakemake.output.metrics_csv, snakemake.output.accuracy,
                 snakemake.output.summary, snakemake.output.privacy_utility)
