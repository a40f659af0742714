# fetch: the only stage that may use the network (or a local mirror); prepare: one format.
# Logs and benchmarks sit beside the stage's folder: fetch replaces data/raw/<dataset>/ whole.


rule fetch:
    input:
        user_files,
    output:
        f"{DATA}/raw/{{dataset}}/manifest.json",
    log:
        f"{DATA}/raw/{{dataset}}.fetch.log",
    benchmark:
        f"{DATA}/raw/{{dataset}}.fetch.benchmark.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        p=params_for("fetch"),
        stamp=user_files_stamp,
        raw=lambda w, output: os.path.dirname(output[0]),
    shell:
        "basis-nmce fetch --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --out {params.raw:q} 2> {log:q}"


rule prepare:
    input:
        f"{DATA}/raw/{{dataset}}/manifest.json",
    output:
        npz=f"{DATA}/prepared/{{dataset}}.npz",
        meta=f"{DATA}/prepared/{{dataset}}.json",
    log:
        f"{DATA}/prepared/{{dataset}}.log",
    benchmark:
        f"{DATA}/prepared/{{dataset}}.benchmark.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        p=params_for("prepare"),
        raw=lambda w, input: os.path.dirname(input[0]),
    shell:
        "basis-nmce prepare --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --raw {params.raw:q} --out {output.npz:q} 2> {log:q}"
