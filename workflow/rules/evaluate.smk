# evaluate(dataset, kind, method): the papers' metrics on the held-out split.


rule evaluate:
    input:
        embedding=method_embedding,
        reference=f"{RES}/analytic/{{dataset}}/{{kind}}/embedding.npz",
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
        features=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
    output:
        metrics=f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/metrics.json",
        predictions=f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/predictions.npz",
    log:
        f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/log.txt",
    threads: config["threads"]
    params:
        p=params_for("evaluate"),
    shell:
        "basis-nmce evaluate --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --method {wildcards.method} --embedding {input.embedding:q}"
        " --reference {input.reference:q} --prepared {input.prepared:q}"
        " --features {input.features:q} --out {output.metrics:q} --threads {threads} 2> {log:q}"
