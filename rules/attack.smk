rule attack:
    """Invert one shard of a round's uploads (its real ones, or a probe batch size's). Sees what the server sees:
    never the private data."""
    input:
        # the clients' protocol travels in the global model's metadata, as a server sends it
        global_model=uploads_input("global_model"),
        updates=uploads_input("updates"),
        index=uploads_input("index"),
        public_pool=lambda wc: PUBLIC_POOL if attack_is_given("needs_public_pool", wc.attack, wc.defense) else [],
        # the clients' own public draws: given only to the adaptive_oracle upper bound
        public_draws=lambda wc: (uploads_file("public_draws", wc.defense, wc.round, wc.seed, wc.uploads)
                                 if attack_is_given("needs_public_draws", wc.attack, wc.defense) else []),
    output:
        reconstructions=shard_file("reconstructions"),
    params:
        attack=lambda wc: wc.attack,
        attack_params=lambda wc: gh_config.attack_params(config, wc.attack),
        model_config=config["model"],
        defense_name=lambda wc: RUNS[wc.defense].defense,
        defense_params=lambda wc: RUNS[wc.defense].params,
        positions=lambda wc: gh_config.shard_positions(config, int(wc.shard), wc.uploads),
        seed=lambda wc: int(wc.seed),  # the replicate's: the restarts' initial images
    log:
        f"{OUT}/logs/attack/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}_{{uploads}}_shard{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/attack/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}_{{uploads}}_shard{{shard}}.tsv"
    threads: THREADS
    resources:
        runtime=240,
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/attack.py"


rule evaluate:
    """Score a shard's reconstructions against the private originals (PSNR, SSIM, LPIPS, semantic match), and
    its budget checkpoints (PSNR, SSIM); draw them."""
    input:
        reconstructions=rules.attack.output.reconstructions,
        private=uploads_input("private"),
        # the semantic reference: the no-defense run's final model, or CLIP with the class names
        reference_model=SEMANTIC_REFERENCE_MODEL,
        dataset=DATASET,  # class names: the grid's captions, and the CLIP reference's classes
        clip_files=CLIP_FILES if METRICS["semantic_reference"] == "clip" else [],
        lpips_backbone=LPIPS_BACKBONE,
        # the recorded draws score an attack that estimates them (evaluation only, never the attack job)
        public_draws=lambda wc: (uploads_file("public_draws", wc.defense, wc.round, wc.seed, wc.uploads)
                                 if attack_is_given("infers_public_draws", wc.attack, wc.defense) else []),
    output:
        metrics=shard_file("metrics"),
        budget=shard_file("budget"),
        grid=shard_file("grid"),
    params:
        identity=lambda wc: {
            "defense": wc.defense,
            "defense_name": RUNS[wc.defense].defense,
            "attack": wc.attack,
            "seed": int(wc.seed),
            "round": int(wc.round),
            "uploads": wc.uploads,
            "shard": int(wc.shard),
        },
        metric_settings=METRICS,
        model_config=config["model"],
        clip=config["labels"]["clip"],
    log:
        f"{OUT}/logs/evaluate/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}_{{uploads}}_shard{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}_{{uploads}}_shard{{shard}}.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/evaluate.py"
