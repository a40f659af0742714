# features(dataset, kind): kind raw = flattened, scaled, optional PCA.


rule features:
    input:
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        npz=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        meta=f"{RES}/features/{{dataset}}/{{kind}}/features.json",
    log:
        f"{RES}/features/{{dataset}}/{{kind}}/log.txt",
    threads: config["threads"]
    params:
        p=params_for("features"),
    shell:
        "basis-nmce features --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --kind {wildcards.kind} --prepared {input.prepared:q} --out {output.npz:q}"
        " --threads {threads} 2> {log:q}"
