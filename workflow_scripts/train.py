from gradienthide import stages
from gradienthide.workflow import start_job

device = start_job(snakemake)
stages.train_defense(
    snakemake.wildcards.defense, snakemake.params.defense_name, snakemake.params.defense_params,
    snakemake.params.model, snakemake.params.training, snakemake.params.seed,
    snakemake.input.dataset, snakemake.input.splits, snakemake.input.labels or None,
    snakemake.output.accuracy, snakemake.output.final_model, snakemake.params.round_dirs, device,
)
