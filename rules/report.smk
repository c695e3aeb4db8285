ALL_METRICS = [
    shard_file("metrics", run, attack, r, s)
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
        accuracy=[f"{dumps.train_dir(OUT, run)}/accuracy.parquet" for run in RUNS],
        public_labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
    output:
        metrics_table=f"{OUT}/report/metrics.parquet",
        metrics_csv=f"{OUT}/report/metrics.csv",
        accuracy_table=f"{OUT}/report/accuracy.parquet",
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
        metrics_table=rules.aggregate.output.metrics_table,
        accuracy_table=rules.aggregate.output.accuracy_table,
        privacy_utility=rules.aggregate.output.privacy_utility,
        public_labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
        reconstructions=[shard_file("reconstructions", run, FIRST_ATTACK, ATTACK_ROUNDS[0], 0) for run in RUNS],
        private=[round_file("private", run, ATTACK_ROUNDS[0]) for run in RUNS],
    output:
        psnr_figure=report(f"{OUT}/report/psnr_by_defense.png", caption="../report/psnr_by_defense.rst",
                           category="Privacy"),
        accuracy_figure=report(f"{OUT}/report/accuracy_by_round.png", caption="../report/accuracy_by_round.rst",
                               category="Utility"),
        privacy_utility_figure=report(f"{OUT}/report/privacy_utility.png", caption="../report/privacy_utility.rst",
                                      category="Privacy"),
        reconstructions_figure=report(f"{OUT}/report/reconstructions.png", caption="../report/reconstructions.rst",
                                      category="Privacy"),
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
