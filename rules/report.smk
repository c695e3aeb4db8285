ATTACK_JOBS = [
    dict(defense=run, attack=attack, seed=seed, round_number=r, uploads=uploads, shard=s)
    for run in RUNS
    for attack in config["attacks"]
    if gh_config.attack_targets(config, attack, RUNS[run])
    for seed in SEEDS
    for r in ATTACK_ROUNDS
    for uploads in gh_config.attacked_uploads_of(config, attack)
    for s in SHARDS[uploads]
]
ALL_METRICS = [shard_file("metrics", **job) for job in ATTACK_JOBS]
ALL_BUDGET_METRICS = [shard_file("budget", **job) for job in ATTACK_JOBS]
# the reconstructions figure: for each attack, the first shard of the first attacked uploads (the real ones
# when attacked, else the smallest probe batch) at the first attacked round of the first replicate of every
# defense setting it runs against (parallel lists: file, setting, attack)
RECONSTRUCTION_BLOCKS = [(run, attack) for attack in config["attacks"] for run in RUNS
                         if gh_config.attack_targets(config, attack, RUNS[run])
                         and UPLOADS[0] in gh_config.attacked_uploads_of(config, attack)]


rule aggregate:
    """One tidy table of every metric by defense, attack, replicate, round and uploads, the budget checkpoints, the
    paired differences to no defense, accuracy, and the summary with intervals and verdicts."""
    input:
        metrics=ALL_METRICS,
        budget_metrics=ALL_BUDGET_METRICS,
        accuracy=[train_file("accuracy.parquet", run, seed) for run in RUNS for seed in SEEDS],
        public_labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
    output:
        metrics_table=f"{OUT}/report/metrics.parquet",
        metrics_csv=f"{OUT}/report/metrics.csv",
        budget_table=f"{OUT}/report/budget.parquet",
        budget_curves=f"{OUT}/report/budget_curves.csv",
        paired_table=f"{OUT}/report/paired.parquet",
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
    """PSNR by defense, test accuracy by round, privacy-utility per attack, PSNR against the attack's
    iterations, and each attack's reconstruction of one batch under every defense; each figure
    states the labeler, the budgets and what its intervals are over."""
    input:
        metrics_table=rules.aggregate.output.metrics_table,
        accuracy_table=rules.aggregate.output.accuracy_table,
        privacy_utility=rules.aggregate.output.privacy_utility,
        summary=rules.aggregate.output.summary,
        budget_curves=rules.aggregate.output.budget_curves,
        public_labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
        reconstructions=[shard_file("reconstructions", run, attack, ATTACK_ROUNDS[0], 0, SEEDS[0], UPLOADS[0])
                         for run, attack in RECONSTRUCTION_BLOCKS],
        private=[uploads_file("private", run, ATTACK_ROUNDS[0], SEEDS[0], UPLOADS[0]) for run in RUNS],
        dataset=DATASET,  # the class names the reconstructions are captioned with
    output:
        psnr_figure=report(f"{OUT}/report/psnr_by_defense.png", caption="../report/psnr_by_defense.rst",
                           category="Privacy"),
        accuracy_figure=report(f"{OUT}/report/accuracy_by_round.png", caption="../report/accuracy_by_round.rst",
                               category="Utility"),
        privacy_utility_figure=report(f"{OUT}/report/privacy_utility.png", caption="../report/privacy_utility.rst",
                                      category="Privacy"),
        reconstructions_figure=report(f"{OUT}/report/reconstructions.png", caption="../report/reconstructions.rst",
                                      category="Privacy"),
        budget_figure=report(f"{OUT}/report/budget_curves.png", caption="../report/budget_curves.rst",
                             category="Privacy"),
    params:
        runs=list(RUNS),
        reconstruction_runs=[run for run, _ in RECONSTRUCTION_BLOCKS],
        reconstruction_attacks=[attack for _, attack in RECONSTRUCTION_BLOCKS],
        attack_round=ATTACK_ROUNDS[0],
        reconstruction_seed=SEEDS[0],
        reconstruction_uploads=UPLOADS[0],
        attack_settings={attack: gh_config.attack_params(config, attack) for attack in config["attacks"]},
    log:
        f"{OUT}/logs/figures.log",
    benchmark:
        f"{OUT}/benchmarks/figures.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/figures.py"


# attack quality against the private batch size: only when privacy probes are made
BATCH_SIZE_FIGURE = [f"{OUT}/report/psnr_by_batch_size.png"] if PROBE_BATCH_SIZES else []


rule psnr_by_batch_size:
    """Mean PSNR with its interval against the private batch size, one line per defense setting, one panel per
    attack and round (the probe uploads, and the real ones at their mean batch)."""
    input:
        summary=rules.aggregate.output.summary,
        public_labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
    output:
        batch_size_figure=report(f"{OUT}/report/psnr_by_batch_size.png", caption="../report/psnr_by_batch_size.rst",
                                 category="Privacy"),
    params:
        runs=list(RUNS),
        attack_settings={attack: gh_config.attack_params(config, attack) for attack in config["attacks"]},
    log:
        f"{OUT}/logs/psnr_by_batch_size.log",
    benchmark:
        f"{OUT}/benchmarks/psnr_by_batch_size.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/psnr_by_batch_size.py"


# GradientHide swept against the attackers who know it (adaptive, adaptive_infer, adaptive_oracle)
SETTINGS_FIGURE = (
    [f"{OUT}/report/gradienthide_settings.png"]
    if sum(run.defense == "gradienthide" for run in RUNS.values()) > 1
    and any(a.startswith("adaptive") for a in config["attacks"])
    else []
)


rule gradienthide_settings:
    """GradientHide's settings side by side: PSNR under IG and the adaptive attacks, and utility."""
    input:
        privacy_utility=rules.aggregate.output.privacy_utility,
        public_labels=PUBLIC_LABELS if USES_PUBLIC_POOL else [],
    output:
        settings_figure=report(f"{OUT}/report/gradienthide_settings.png", caption="../report/gradienthide_settings.rst",
                               category="Privacy"),
    params:
        runs=list(RUNS),
        attack_settings={attack: gh_config.attack_params(config, attack) for attack in config["attacks"]},
        shown_uploads=UPLOADS[0],
    log:
        f"{OUT}/logs/gradienthide_settings.log",
    benchmark:
        f"{OUT}/benchmarks/gradienthide_settings.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/gradienthide_settings.py"


rule client_classes_figure:
    """The clients' class histogram as a heatmap (clients by classes)."""
    input:
        client_classes=CLIENT_CLASSES,
    output:
        client_classes_figure=report(f"{OUT}/report/client_classes.png", caption="../report/client_classes.rst",
                                     category="Data"),
    params:
        partition=config["data"]["partition"],
        dirichlet_alpha=config["data"]["dirichlet_alpha"],
    log:
        f"{OUT}/logs/client_classes_figure.log",
    benchmark:
        f"{OUT}/benchmarks/client_classes_figure.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/client_classes.py"
