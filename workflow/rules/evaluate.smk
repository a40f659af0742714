# evaluate(dataset, kind, method): the papers' metrics on the held-out split. BASiS methods
# are scored against the exact eigenvectors (analytic); NMCE methods by their cluster head,
# feature classifiers and subspace clustering (their model for augmented copies).


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/metrics.json",
        predictions=f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/predictions.npz",
    log:
        f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/log.txt",
    benchmark:
        f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        p=params_for("evaluate"),
        reference=lambda w, input: _arg("--reference", getattr(input, "reference", [])),
        features=lambda w, input: _arg("--features", input.features),
    shell:
        "basis-nmce evaluate --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --method {wildcards.method} --embedding {input.embedding:q} {params.reference}"
        " --prepared {input.prepared:q} {params.features} --out {output.metrics:q}"
        " --threads {threads} 2> {log:q}"
