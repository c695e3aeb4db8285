rule attack:
    """Invert one shard of a round's real uploads. Sees what the server sees: never the private data."""
    wildcard_constraints:
        uploads=DEPLOYED,  # the probes' shards are attack_probes' outputs
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


rule attack_probes:
    """Invert every probe shard of a round (each probe batch size's) in one job: the same reconstructions as an
    attack job per shard, one process start instead of one per shard. Sees what the server sees: never the private
    data."""
    input:
        # lists aligned with PROBE_UPLOADS
        global_model=lambda wc: probe_uploads_files("global_model", wc),
        updates=lambda wc: probe_uploads_files("updates", wc),
        index=lambda wc: probe_uploads_files("index", wc),
        public_pool=lambda wc: PUBLIC_POOL if attack_is_given("needs_public_pool", wc.attack, wc.defense) else [],
        public_draws=lambda wc: (probe_uploads_files("public_draws", wc)
                                 if attack_is_given("needs_public_draws", wc.attack, wc.defense) else []),
    output:
        reconstructions=probe_shard_files("reconstructions"),
    params:
        attack=lambda wc: wc.attack,
        attack_params=lambda wc: gh_config.attack_params(config, wc.attack),
        model_config=config["model"],
        defense_name=lambda wc: RUNS[wc.defense].defense,
        defense_params=lambda wc: RUNS[wc.defense].params,
        probe_shards=[{"uploads": uploads, "positions": gh_config.shard_positions(config, shard, uploads)}
                      for uploads, shard in PROBE_SHARDS],
        probe_uploads=PROBE_UPLOADS,
        seed=lambda wc: int(wc.seed),
    log:
        f"{OUT}/logs/attack_probes/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}.log",
    benchmark:
        f"{OUT}/benchmarks/attack_probes/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}.tsv"
    threads: THREADS
    resources:
        runtime=240 * max(1, len(PROBE_SHARDS)),
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/attack_probes.py"


rule evaluate:
    """Score a shard's reconstructions against the private originals (PSNR, SSIM, LPIPS, semantic match), and
    its budget checkpoints (PSNR, SSIM); draw them."""
    wildcard_constraints:
        uploads=DEPLOYED,  # the probes' shards are evaluate_probes' outputs
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
        identity=lambda wc: shard_identity(wc, wc.uploads, int(wc.shard)),
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


rule evaluate_probes:
    """Score every probe shard of an attack_probes job in turn, as an evaluate job per shard would."""
    input:
        reconstructions=rules.attack_probes.output.reconstructions,
        private=lambda wc: probe_uploads_files("private", wc),  # aligned with PROBE_UPLOADS
        reference_model=SEMANTIC_REFERENCE_MODEL,
        dataset=DATASET,
        clip_files=CLIP_FILES if METRICS["semantic_reference"] == "clip" else [],
        lpips_backbone=LPIPS_BACKBONE,
        public_draws=lambda wc: (probe_uploads_files("public_draws", wc)
                                 if attack_is_given("infers_public_draws", wc.attack, wc.defense) else []),
    output:
        metrics=probe_shard_files("metrics"),
        budget=probe_shard_files("budget"),
        grid=probe_shard_files("grid"),
    params:
        identities=lambda wc: [shard_identity(wc, uploads, shard) for uploads, shard in PROBE_SHARDS],
        probe_uploads=PROBE_UPLOADS,
        metric_settings=METRICS,
        model_config=config["model"],
        clip=config["labels"]["clip"],
    log:
        f"{OUT}/logs/evaluate_probes/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_probes/{{defense}}/{{attack}}/seed{{seed}}/round{{round}}.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/evaluate_probes.py"
