# evaluate(dataset, kind, method): the papers' metrics on the held-out split.


rule evaluate:
    input:
        embedding=ancient(method_embedding),
        reference=ancient(f"{RES}/analytic/{{dataset}}/{{kind}}/embedding.npz"),
        prepared=ancient(f"{DATA}/prepared/{{dataset}}.npz"),
        features=ancient(f"{RES}/features/{{dataset}}/{{kind}}/features.npz"),
    output:
        metrics=f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/metrics.json",
        predictions=f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/predictions.npz",
    params:
        p=params_for("evaluate"),
    threads: config["threads"]
    log:
        f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/log.txt",
    shell:
        "basis-nmce evaluate --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --method {wildcards.method} --embedding {input.embedding:q}"
        " --reference {input.reference:q} --prepared {input.prepared:q}"
        " --features {input.features:q} --out {output.metrics:q} --threads {threads} 2> {log:q}"
