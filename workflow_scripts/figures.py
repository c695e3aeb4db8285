from gradienthide import stages
from gradienthide.workflow import start_job

start_job(snakemake)
examples = dict(zip(snakemake.params.runs, zip(snakemake.input.reconstructions, snakemake.input.private)))
stages.figures(snakemake.input.metrics, snakemake.input.accuracy, snakemake.input.privacy_utility, examples,
               snakemake.input.labels or None, snakemake.output.psnr, snakemake.output.accuracy,
               snakemake.output.privacy_utility, snakemake.output.reconstructions)
