rule attack:
    """Invert one shard of a round's uploads. Sees what the server sees: never the private data."""
    input:
        global_model=f"{OUT}/train/{{defense}}/round{{round}}/global_model.safetensors",
        updates=f"{OUT}/train/{{defense}}/round{{round}}/updates.safetensors",
        index=f"{OUT}/train/{{defense}}/round{{round}}/updates.parquet",
        public_pool=lambda wc: PUBLIC_POOL if attack_models_public_steps(wc.attack, wc.defense) else [],
        # the clients' own public batches: read only by the adaptive_oracle upper bound
        public_draws=lambda wc: (f"{OUT}/train/{wc.defense}/round{wc.round}/public_draws.parquet"
                                 if attack_reads_public_draws(wc.attack, wc.defense) else []),
    output:
        reconstructions=f"{OUT}/attack/{{defense}}/{{attack}}/round{{round}}/shard{{shard}}/reconstructions.safetensors",
    params:
        attack_params=lambda wc: gh_config.attack_params(config, wc.attack),
        model=config["model"],
        defense_name=lambda wc: RUNS[wc.defense].defense,
        defense_params=lambda wc: RUNS[wc.defense].params,
        protocol={key: config["training"][key] for key in ("local_steps", "lr")},
        positions=lambda wc: gh_config.shard_positions(config, int(wc.shard)),
        seed=config["seed"],
    log:
        f"{OUT}/logs/attack/{{defense}}/{{attack}}/round{{round}}_shard{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/attack/{{defense}}/{{attack}}/round{{round}}_shard{{shard}}.tsv"
    threads: THREADS
    resources:
        runtime=240,
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/attack.py"


rule evaluate:
    """Score a shard's reconstructions against the private originals (PSNR, SSIM, LPIPS, semantic match); draw them."""
    input:
        reconstructions=rules.attack.output.reconstructions,
        private=f"{OUT}/train/{{defense}}/round{{round}}/private.safetensors",
        index=f"{OUT}/train/{{defense}}/round{{round}}/updates.parquet",
        # the semantic reference: the no-defense run's final model, or CLIP with the class names
        reference_model=SEMANTIC_REFERENCE_MODEL,
        dataset=DATASET if METRICS["semantic_reference"] == "clip" else [],
    output:
        metrics=f"{OUT}/attack/{{defense}}/{{attack}}/round{{round}}/shard{{shard}}/metrics.parquet",
        grid=f"{OUT}/attack/{{defense}}/{{attack}}/round{{round}}/shard{{shard}}/reconstructions.png",
    params:
        identity=lambda wc: {
            "defense": wc.defense,
            "defense_name": RUNS[wc.defense].defense,
            "attack": wc.attack,
            "round": int(wc.round),
            "shard": int(wc.shard),
        },
        metrics=METRICS,
        model=config["model"],
        clip=config["labels"]["clip"],
    log:
        f"{OUT}/logs/evaluate/{{defense}}/{{attack}}/round{{round}}_shard{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{defense}}/{{attack}}/round{{round}}_shard{{shard}}.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/evaluate.py"
