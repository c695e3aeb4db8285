ALL_METRICS = [
    f"{shard_dir(run, attack, r, s)}/metrics.parquet"
    for run in RUNS
    for attack in config["attacks"]
    if gh_config.attack_targets(config, attack, RUNS[run])
    for r in ATTACK_ROUNDS
    for s in SHARDS
]
# the reconstructions figure shows an attack that every defense setting faces
FIRST_ATTACK = next((a for a in config["attacks"] if all(gh_config.attack_targets(config, a, r) for r in RUNS.values())),
                    next(iter(config["attacks"])))


rule aggregate:
    """One tidy table of every metric by defense, attack and round, plus accuracy and a summary."""
    input:
        metrics=ALL_METRICS,
        accuracy=[f"{train_dir(run)}/accuracy.parquet" for run in RUNS],
        labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
    output:
        metrics=f"{OUT}/report/metrics.parquet",
        metrics_csv=f"{OUT}/report/metrics.csv",
        accuracy=f"{OUT}/report/accuracy.parquet",
        summary=report(f"{OUT}/report/summary.csv", caption="../report/summary.rst", category="Tables"),
        privacy_utility=report(f"{OUT}/report/privacy_utility.csv", caption="../report/privacy_utility_table.rst",
                               category="Tables"),
    log:
        f"{OUT}/logs/aggregate.log",
    benchmark:
        f"{OUT}/benchmarks/aggregate.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/aggregate.py"


rule figures:
    """PSNR by defense, test accuracy by round, and each defense's reconstruction of one batch."""
    input:
        metrics=rules.aggregate.output.metrics,
        accuracy=rules.aggregate.output.accuracy,
        privacy_utility=rules.aggregate.output.privacy_utility,
        labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
        reconstructions=[f"{shard_dir(run, FIRST_ATTACK, ATTACK_ROUNDS[0], 0)}/reconstructions.safetensors" for run in RUNS],
        private=[f"{round_dir(run, ATTACK_ROUNDS[0])}/private.safetensors" for run in RUNS],
    output:
        psnr=report(f"{OUT}/report/psnr_by_defense.png", caption="../report/psnr_by_defense.rst", category="Privacy"),
        accuracy=report(f"{OUT}/report/accuracy_by_round.png", caption="../report/accuracy_by_round.rst", category="Utility"),
        privacy_utility=report(f"{OUT}/report/privacy_utility.png", caption="../report/privacy_utility.rst", category="Privacy"),
        reconstructions=report(f"{OUT}/report/reconstructions.png", caption="../report/reconstructions.rst", category="Privacy"),
    params:
        runs=list(RUNS),
    log:
        f"{OUT}/logs/figures.log",
    benchmark:
        f"{OUT}/benchmarks/figures.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/figures.py"
