# fetch: the only stage that may use the network (or a local mirror); prepare: one format.


rule fetch:
    input:
        user_files,
    output:
        f"{DATA}/raw/{{dataset}}/manifest.json",
    log:
        f"{DATA}/raw/{{dataset}}.fetch.log",
    params:
        p=params_for("fetch"),
        stamp=user_files_stamp,
        raw=lambda w: f"{DATA}/raw/{w.dataset}",
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
    params:
        p=params_for("prepare"),
        raw=lambda w: f"{DATA}/raw/{w.dataset}",
    shell:
        "basis-nmce prepare --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --raw {params.raw:q} --out {output.npz:q} 2> {log:q}"
