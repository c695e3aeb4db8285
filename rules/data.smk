rule prepare_data:
    """Load the private dataset, resize it, and split it into test set, public pool and clients."""
    output:
        dataset=DATASET,
        splits=SPLITS,
    params:
        data=config["data"],
        seed=config["seed"],
    log:
        f"{OUT}/logs/prepare_data.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/prepare_data.py"
