# NMCE (Li et al.): stage 1 TCR, stage 2 cluster head on the frozen backbone, stage 3
# fine-tuning (or, with nmce.joint, the full objective from scratch in nmce_finetune). Vector
# data (network mlp) read the kind's features; image networks read the prepared images.
# Checkpoints live outside the rules' outputs, so a killed job resumes from its last one.


rule nmce_tcr:
    input:
        features=nmce_features,
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        npz=f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/embedding.npz",
        meta=f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/embedding.json",
        model=f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/model.pt",
        model_meta=f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/model.json",
        log_csv=f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/log.csv",
    log:
        f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["gpus"],
    params:
        p=params_for("nmce_tcr"),
        features=lambda w, input: _arg("--features", input.features),
        checkpoint=f"{RES}/checkpoints/nmce_tcr/{{dataset}}/{{kind}}/checkpoint.pt",
    shell:
        "basis-nmce nmce_tcr --params {params.p:q} --dataset {wildcards.dataset:q}"
        " {params.features} --prepared {input.prepared:q} --out {output.npz:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} 2> {log:q}"


rule nmce_cluster:
    input:
        features=nmce_features,
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
        model=f"{RES}/nmce_tcr/{{dataset}}/{{kind}}/model.pt",
    output:
        npz=f"{RES}/nmce_cluster/{{dataset}}/{{kind}}/embedding.npz",
        meta=f"{RES}/nmce_cluster/{{dataset}}/{{kind}}/embedding.json",
        model=f"{RES}/nmce_cluster/{{dataset}}/{{kind}}/model.pt",
        model_meta=f"{RES}/nmce_cluster/{{dataset}}/{{kind}}/model.json",
        log_csv=f"{RES}/nmce_cluster/{{dataset}}/{{kind}}/log.csv",
    log:
        f"{RES}/nmce_cluster/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/nmce_cluster/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["gpus"],
    params:
        p=params_for("nmce_cluster"),
        features=lambda w, input: _arg("--features", input.features),
        checkpoint=f"{RES}/checkpoints/nmce_cluster/{{dataset}}/{{kind}}/checkpoint.pt",
    shell:
        "basis-nmce nmce_cluster --params {params.p:q} --dataset {wildcards.dataset:q}"
        " {params.features} --prepared {input.prepared:q} --model {input.model:q}"
        " --out {output.npz:q} --checkpoint {params.checkpoint:q} --threads {threads}"
        " 2> {log:q}"


rule nmce_finetune:
    input:
        features=nmce_features,
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
        model=nmce_finetune_model,
    output:
        npz=f"{RES}/nmce_finetune/{{dataset}}/{{kind}}/embedding.npz",
        meta=f"{RES}/nmce_finetune/{{dataset}}/{{kind}}/embedding.json",
        model=f"{RES}/nmce_finetune/{{dataset}}/{{kind}}/model.pt",
        model_meta=f"{RES}/nmce_finetune/{{dataset}}/{{kind}}/model.json",
        log_csv=f"{RES}/nmce_finetune/{{dataset}}/{{kind}}/log.csv",
    log:
        f"{RES}/nmce_finetune/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/nmce_finetune/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["gpus"],
    params:
        p=params_for("nmce_finetune"),
        features=lambda w, input: _arg("--features", input.features),
        model=lambda w, input: _arg("--model", input.model),
        checkpoint=f"{RES}/checkpoints/nmce_finetune/{{dataset}}/{{kind}}/checkpoint.pt",
    shell:
        "basis-nmce nmce_finetune --params {params.p:q} --dataset {wildcards.dataset:q}"
        " {params.features} --prepared {input.prepared:q} {params.model}"
        " --out {output.npz:q} --checkpoint {params.checkpoint:q} --threads {threads}"
        " 2> {log:q}"
