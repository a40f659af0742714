# analytic(dataset, kind): exact eigenvectors of the train graph and of the test split's own
# graph: the reference every learnt method is scored against.


rule analytic:
    input:
        features=ancient(f"{RES}/features/{{dataset}}/{{kind}}/features.npz"),
        prepared=ancient(f"{DATA}/prepared/{{dataset}}.npz"),
    output:
        npz=f"{RES}/analytic/{{dataset}}/{{kind}}/embedding.npz",
        meta=f"{RES}/analytic/{{dataset}}/{{kind}}/embedding.json",
    params:
        p=params_for("analytic"),
    threads: config["threads"]
    resources:
        gpu=config["gpus"],
    log:
        f"{RES}/analytic/{{dataset}}/{{kind}}/log.txt",
    shell:
        "basis-nmce analytic --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --features {input.features:q} --prepared {input.prepared:q}"
        " --out {output.npz:q} --threads {threads} 2> {log:q}"
