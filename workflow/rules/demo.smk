# The demo's corpus and pretrained model (resources/README.md). Their outputs are shipped, so no
# default run needs them: they are not inputs of `rule all`, and config.yaml names the model by
# path (a param, never an input). Rebuild on purpose:
#   snakemake --cores 2 -f demo_corpus            # needs pip install -e '.[demo]' (the catalogues)
#   snakemake --cores 2 -f pretrain_demo_model    # about 10 minutes on 2 cores
DEMO_CORPUS = "resources/demo/corpus"
DEMO_MODEL = "resources/models/polyroute-demo-qwen3moe"


rule demo_corpus:
    output:
        directory(DEMO_CORPUS),
    params:
        languages=LANGUAGES,
        heldout=100,
        seed=0,
    log:
        "logs/demo/demo_corpus.log",
    localrule: True
    conda:
        ENVS["gpu"]  # plus the catalogues' packages: pip install -e '.[demo]'
    script:
        "../scripts/demo_corpus.py"


rule pretrain_demo_model:
    input:
        corpus=DEMO_CORPUS,
        bundle=CFG["datasets"]["local"] or "resources/demo",
    output:
        directory(DEMO_MODEL),
    params:
        languages=LANGUAGES,
        seed=0,
        # weights kept in <model>/checkpoints/step-<n>/ (the last: the final model's, from the same run):
        # the default run's model.revisions, the demo's training dynamics
        checkpoints=[50, 200, 400],
    log:
        "logs/demo/pretrain_demo_model.log",
    benchmark:
        "benchmarks/demo/pretrain_demo_model.tsv"
    threads: 2
    conda:
        ENVS["gpu"]
    script:
        "../scripts/pretrain_demo_model.py"
