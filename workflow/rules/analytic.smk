# analytic(dataset, kind): exact eigenvectors of the train graph and of the test split's own
# graph: the reference every learnt method is scored against.


rule analytic:
    input:
        features=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        npz=f"{RES}/analytic/{{dataset}}/{{kind}}/embedding.npz",
        meta=f"{RES}/analytic/{{dataset}}/{{kind}}/embedding.json",
    log:
        f"{RES}/analytic/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/analytic/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=config["gpus"],
    params:
        p=params_for("analytic"),
    shell:
        "basis-nmce analytic --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --features {input.features:q} --prepared {input.prepared:q}"
        " --out {output.npz:q} --threads {threads} 2> {log:q}"
