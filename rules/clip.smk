rule label_public_pool:
    """Label the public pool in the task's classes: CLIP zero-shot, or the oracle's true labels."""
    input:
        dataset=DATASET,
        splits=SPLITS,
    output:
        public_labels=PUBLIC_LABELS,
        public_pool=PUBLIC_POOL,
    params:
        # only the settings of the chosen labeler, so editing the other reruns nothing
        labels={
            "labeler": config["labels"]["labeler"],
            "clip": config["labels"]["clip"] if config["labels"]["labeler"] == "clip" else None,
        },
    log:
        f"{OUT}/logs/label_public_pool.log",
    benchmark:
        f"{OUT}/benchmarks/label_public_pool.tsv"
    threads: THREADS
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/label_public_pool.py"
