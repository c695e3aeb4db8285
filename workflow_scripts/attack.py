from gradienthide import stages
from gradienthide.workflow import start_job

device = start_job(snakemake)
stages.attack_shard(
    snakemake.wildcards.attack, snakemake.params.attack_params, snakemake.params.model,
    snakemake.params.defense_name, snakemake.params.defense_params, snakemake.params.protocol,
    snakemake.input.global_model, snakemake.input.updates, snakemake.input.index,
    snakemake.params.positions, snakemake.params.seed, snakemake.output.reconstructions,
    snakemake.input.public_pool or None, snakemake.input.public_draws or None, device,
)
