# BASiS (Algorithm 1): the anchors' reference embedding, then aligned batch training.
# The checkpoint lives outside the rule's outputs, so Snakemake does not delete it when a job
# is killed: the rerun resumes from it (and the stage removes it once its outputs exist).


rule basis_reference:
    input:
        features=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        npz=f"{RES}/basis_reference/{{dataset}}/{{kind}}/reference.npz",
        meta=f"{RES}/basis_reference/{{dataset}}/{{kind}}/reference.json",
    log:
        f"{RES}/basis_reference/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/basis_reference/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        p=params_for("basis_reference"),
    shell:
        "basis-nmce basis_reference --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --features {input.features:q} --prepared {input.prepared:q}"
        " --out {output.npz:q} --threads {threads} 2> {log:q}"


rule basis_train:
    input:
        features=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        reference=f"{RES}/basis_reference/{{dataset}}/{{kind}}/reference.npz",
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        npz=f"{RES}/basis_train/{{dataset}}/{{kind}}/embedding.npz",
        meta=f"{RES}/basis_train/{{dataset}}/{{kind}}/embedding.json",
        model=f"{RES}/basis_train/{{dataset}}/{{kind}}/model.pt",
        model_meta=f"{RES}/basis_train/{{dataset}}/{{kind}}/model.json",
        log_csv=f"{RES}/basis_train/{{dataset}}/{{kind}}/log.csv",
        anchors=f"{RES}/basis_train/{{dataset}}/{{kind}}/anchors.npz",
        grid=f"{RES}/basis_train/{{dataset}}/{{kind}}/grid.npz",
    log:
        f"{RES}/basis_train/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/basis_train/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["gpus"],
    params:
        p=params_for("basis_train"),
        checkpoint=f"{RES}/checkpoints/basis_train/{{dataset}}/{{kind}}/checkpoint.pt",
    shell:
        "basis-nmce basis_train --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --features {input.features:q} --reference {input.reference:q}"
        " --prepared {input.prepared:q} --out {output.npz:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} 2> {log:q}"
