# GradientHide: a federated-learning defense against gradient inversion, evaluated side by
# side with the field's defenses and attacks. See README.md; the stages live in rules/*.smk.

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from gradienthide import config as gh_config
from gradienthide.snakemake_scheduling import keep_one_reevaluation_timer

min_version("9.0")
# select jobs when one ends, not once a second for every job finished so far (see the module)
keep_one_reevaluation_timer()

# A --configfile given on the command line is a whole experiment; otherwise the default.
if not workflow.overwrite_configfiles:
    workflow.configfile(os.path.join(workflow.basedir, "config.yaml"))

# a nested --config value (training={rounds: 5}) reaches us with string leaves; type them as YAML
gh_config.apply_overrides(config, workflow.config_settings.config)
try:
    _validated = gh_config.validate_config(config, gh_config.load_schema())  # the installed package's schema
    gh_config.preflight(_validated)
except (gh_config.ConfigError, FileNotFoundError, ValueError) as error:
    raise WorkflowError(str(error)) from None
config.clear()
config.update(_validated)

OUT = config["output_dir"]
RUNS = gh_config.defense_runs(config)
SEEDS = config["seeds"]  # replicates: every training run and attack job belongs to one
ATTACK_ROUNDS = config["training"]["attack_rounds"]
# the sets of uploads attacked at each attacked round: deployed (the real ones) and batch<b> (privacy probes)
UPLOADS = gh_config.attacked_uploads(config)
PROBE_BATCH_SIZES = (config["attack"].get("probes") or {}).get("batch_sizes", [])
SHARDS = {uploads: list(range(gh_config.shard_count(config, uploads))) for uploads in UPLOADS}
DEPLOYED = gh_config.DEPLOYED
# the probes' uploads and shards: one attack_probes job inverts them all for an attack, setting, replicate and round
PROBE_UPLOADS = [uploads for uploads in UPLOADS if uploads != DEPLOYED]
PROBE_SHARDS = [(uploads, shard) for uploads in PROBE_UPLOADS for shard in SHARDS[uploads]]
THREADS = config["threads"]

wildcard_constraints:
    defense=r"[A-Za-z0-9_.\-]+",
    seed=r"\d+",
    attack=r"[A-Za-z0-9_]+",
    round=r"\d+",
    uploads=r"deployed|batch\d+",
    shard=r"\d+",


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/clip.smk"
include: "rules/train.smk"
include: "rules/attack.smk"
include: "rules/report.smk"


rule all:
    input:
        rules.aggregate.output,
        rules.figures.output,
        rules.label_quality.output if USES_PUBLIC_POOL else [],
        SETTINGS_FIGURE,
        BATCH_SIZE_FIGURE,
        rules.client_classes_figure.output,
    default_target: True


include: "rules/archive.smk"
