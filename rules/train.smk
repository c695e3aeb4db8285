rule train:
    """FedAvg under one defense setting; keeps the global model and every upload at the attacked rounds."""
    input:
        dataset=DATASET,
        splits=SPLITS,
        labels=lambda wc: PUBLIC_LABELS if gh_config.uses_public_pool(RUNS[wc.defense]) else [],
    output:
        accuracy=f"{OUT}/train/{{defense}}/accuracy.parquet",
        final_model=f"{OUT}/train/{{defense}}/final_model.safetensors",
        rounds=[f"{OUT}/train/{{defense}}/round{r}/{name}" for r in ATTACK_ROUNDS for name in ROUND_FILES],
    params:
        defense_name=lambda wc: RUNS[wc.defense].defense,
        defense_params=lambda wc: RUNS[wc.defense].params,
        model=config["model"],
        training=config["training"],
        seed=config["seed"],
        round_dirs=lambda wc: {r: round_dir(wc.defense, r) for r in ATTACK_ROUNDS},
    log:
        f"{OUT}/logs/train/{{defense}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{defense}}.tsv"
    threads: THREADS
    resources:
        runtime=120,
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/train.py"
