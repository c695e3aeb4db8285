# The public pool's labels: (CLIP only) embed the images, label them into the task's classes,
# select what GradientHide may draw, measure the labels' quality. Each step's params hold only
# what it reads, so editing the prompts reruns the labelling and its dependants, never the
# embedding.

import re

LABELS = config["labels"]
USES_CLIP = LABELS["labeler"] == "clip"
CLIP_TAG = re.sub(r"\.(safetensors|pt|pth|bin)$", "", os.path.basename(LABELS["clip"]["pretrained"]))
CLIP_KEY = re.sub(r"[^A-Za-z0-9_.\-]+", "_", f"{LABELS['clip']['model']}-{CLIP_TAG}")  # model + pretrained tag
PUBLIC_EMBEDDINGS = f"{OUT}/labels/embeddings/{CLIP_KEY}.safetensors"
POOL_LABELS = f"{OUT}/labels/pool_labels.parquet"


rule embed_public:
    """CLIP image embeddings of the public pool, cached per model + pretrained tag + images."""
    input:
        pool_source=PUBLIC_SOURCE,
        clip_files=CLIP_FILES,
    output:
        embeddings=PUBLIC_EMBEDDINGS,
    params:
        clip={key: value for key, value in LABELS["clip"].items() if key != "templates"},
    log:
        f"{OUT}/logs/embed_public.log",
    benchmark:
        f"{OUT}/benchmarks/embed_public.tsv"
    threads: THREADS
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/embed_public.py"


rule label_public:
    """Every pool image's label in the task's classes, its confidence and top-5 classes."""
    input:
        pool_source=PUBLIC_SOURCE,
        embeddings=PUBLIC_EMBEDDINGS if USES_CLIP else [],
        clip_files=CLIP_FILES if USES_CLIP else [],
    output:
        pool_labels=POOL_LABELS,
    params:
        # only the chosen labeler's settings, so editing another's reruns nothing
        labels={
            "labeler": LABELS["labeler"],
            "class_names": LABELS["class_names"],
            "clip": LABELS["clip"] if USES_CLIP else None,
            "simulated_clip": LABELS["simulated_clip"] if LABELS["labeler"] == "simulated_clip" else None,
        },
        dataset=config["data"]["dataset"],
    log:
        f"{OUT}/logs/label_public.log",
    benchmark:
        f"{OUT}/benchmarks/label_public.tsv"
    threads: THREADS
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/label_public.py"


rule label_public_pool:
    """Select the images GradientHide may draw (confidence threshold, per-class top-k); write
    their labels and the public pool of exactly those images."""
    input:
        pool_source=PUBLIC_SOURCE,
        pool_labels=POOL_LABELS,
    output:
        public_labels=PUBLIC_LABELS,
        public_pool=PUBLIC_POOL,
    params:
        selection=LABELS["selection"],
    log:
        f"{OUT}/logs/label_public_pool.log",
    benchmark:
        f"{OUT}/benchmarks/label_public_pool.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/label_public_pool.py"


rule label_quality:
    """The public labels' accuracy against the pool's true labels, before and after selection."""
    input:
        pool_source=PUBLIC_SOURCE,
        pool_labels=POOL_LABELS,
        public_labels=PUBLIC_LABELS,
    output:
        quality_table=f"{OUT}/labels/label_quality.parquet",
        quality_csv=report(f"{OUT}/report/label_quality.csv", caption="../report/label_quality.rst",
                           category="Public labels"),
        confusion_png=report(f"{OUT}/report/label_confusion.png", caption="../report/label_confusion.rst",
                             category="Public labels"),
    params:
        labeler=LABELS["labeler"],
    log:
        f"{OUT}/logs/label_quality.log",
    benchmark:
        f"{OUT}/benchmarks/label_quality.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/label_quality.py"
