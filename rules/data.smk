CLIENT_CLASSES = f"{OUT}/data/client_classes.parquet"


rule prepare_data:
    """Load the private dataset, resize it, and split it into test set, public pool and clients
    (iid or Dirichlet label skew); record the clients' class histogram and channel statistics."""
    input:
        data_file=DATA_FILE,
    output:
        dataset=DATASET,
        splits=SPLITS,
        client_classes=CLIENT_CLASSES,
    params:
        data=config["data"],
        seed=config["seed"],
        **DATA_ROOT_PARAMS,
    log:
        f"{OUT}/logs/prepare_data.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/prepare_data.py"


PUBLIC_SOURCE = f"{OUT}/public/pool_source.safetensors"
PUBLIC_IS_PRIVATE_SLICE = config["public"]["dataset"] == "private_slice"


rule prepare_public:
    """The public pool, in the task's image shape: a source independent of the private data, or the
    private slice prepare_data set aside. Its true labels serve label quality and simulated_clip only."""
    input:
        dataset=DATASET,
        splits=SPLITS if PUBLIC_IS_PRIVATE_SLICE else [],
        source_file=os.path.expanduser(config["public"]["path"]) if config["public"]["dataset"] == "npz" else [],
    output:
        pool_source=PUBLIC_SOURCE,
    params:
        public=config["public"],
        **PUBLIC_ROOT_PARAMS,
    log:
        f"{OUT}/logs/prepare_public.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_public.tsv"
    threads: 1
    conda:
        "../envs/gradienthide.yaml"
    script:
        "../workflow_scripts/prepare_public.py"
