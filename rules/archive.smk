# The paper's archive: one .tar.gz of the finished run (not part of `all`):
#     snakemake --cores 1 archive
# Also keeps the run's command line for the jobs' messages (gradienthide.manifest).

manifest.remember_command()

ARCHIVE = f"{OUT}/archive/results.tar.gz"


rule archive:
    """Every result, dump, reconstruction, log, benchmark, figure and the run manifest, with the
    config as run, the code version (commit, clean tree or not), the package versions and the
    lock they were installed from, in one .tar.gz."""
    input:
        rules.all.input,
    output:
        archive=ARCHIVE,
    params:
        config=config,
        out_dir=lambda wildcards, output: os.path.dirname(os.path.dirname(output.archive)),
        exclude=[os.path.dirname(ARCHIVE), f"{OUT}/logs/archive.log", f"{OUT}/benchmarks/archive.tsv"],
        lock=os.path.join(workflow.basedir, "requirements.lock"),
        repo=workflow.basedir,
    log:
        f"{OUT}/logs/archive.log",
    benchmark:
        f"{OUT}/benchmarks/archive.tsv"
    threads: 1
    localrule: True
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/archive.py"
