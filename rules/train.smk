rule train:
    """Federated training under one defense setting in one replicate; keeps the global model and every upload at the attacked rounds, and the privacy probes' uploads there."""
    input:
        dataset=DATASET,
        splits=SPLITS,
        public_labels=lambda wc: PUBLIC_LABELS if gh_config.uses_public_pool(RUNS[wc.defense]) else [],
        public_pool=lambda wc: PUBLIC_POOL if gh_config.uses_public_pool(RUNS[wc.defense]) else [],
    output:
        accuracy=train_file("accuracy.parquet"),
        final_model=train_file("final_model.safetensors"),
        rounds=[round_file(what, round_number=r) for r in ATTACK_ROUNDS for what in layout.ROUND_FILES],
        probe_files=[uploads_file(what, round_number=r, uploads=gh_config.probe_uploads_id(b))
                for r in ATTACK_ROUNDS for b in PROBE_BATCH_SIZES for what in layout.ROUND_FILES],
    params:
        run_id=lambda wc: wc.defense,
        defense_name=lambda wc: RUNS[wc.defense].defense,
        defense_params=lambda wc: RUNS[wc.defense].params,
        model_config=config["model"],
        training=config["training"],
        data_partition=config["data"]["partition"],
        seed=lambda wc: int(wc.seed),  # the replicate's
        round_dirs=lambda wc: {r: layout.round_dir(OUT, defense=wc.defense, seed=wc.seed, round_number=r)
                               for r in ATTACK_ROUNDS},
        probes=config["attack"].get("probes"),
        probe_dirs=lambda wc: {r: {b: layout.uploads_dir(OUT, defense=wc.defense, seed=wc.seed, round_number=r,
                                                         uploads=gh_config.probe_uploads_id(b))
                                   for b in PROBE_BATCH_SIZES} for r in ATTACK_ROUNDS},
    log:
        f"{OUT}/logs/train/{{defense}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{defense}}/seed{{seed}}.tsv"
    threads: THREADS
    resources:
        runtime=120,
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/train.py"
