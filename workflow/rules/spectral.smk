# The learnt baselines of BASiS Table 1 (SpectralNet, SpecNet2, Diffusion Net) as pipeline
# methods: BASiS's features, graph, K, batch size and iterations, their own `baselines.<method>`
# settings. The checkpoint lives outside the outputs, so a killed job resumes from it.


rule spectral_train:
    input:
        features=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        npz=f"{RES}/{{method}}/{{dataset}}/{{kind}}/embedding.npz",
        meta=f"{RES}/{{method}}/{{dataset}}/{{kind}}/embedding.json",
        model=f"{RES}/{{method}}/{{dataset}}/{{kind}}/model.pt",
        model_meta=f"{RES}/{{method}}/{{dataset}}/{{kind}}/model.json",
        log_csv=f"{RES}/{{method}}/{{dataset}}/{{kind}}/log.csv",
    log:
        f"{RES}/{{method}}/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/{{method}}/{{dataset}}/{{kind}}/benchmark.tsv"
    wildcard_constraints:
        method="|".join(BASELINE_METHODS),
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["gpus"],
    params:
        p=params_for("spectral_train"),
        checkpoint=f"{RES}/checkpoints/{{method}}/{{dataset}}/{{kind}}/checkpoint.pt",
    shell:
        "basis-nmce spectral_train --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --method {wildcards.method} --features {input.features:q}"
        " --prepared {input.prepared:q} --out {output.npz:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} 2> {log:q}"
