# compare(dataset, kind): BASiS Table 1 (and, with compare.neighbors, Fig. 4) on one data set
# and feature kind: the exact embedding, BASiS and the baselines over compare.seeds seeds.
# Planned, and in the report, when run.compare is true (the basis-* presets set it).


rule compare:
    input:
        features=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        json=f"{RES}/compare/{{dataset}}/{{kind}}/compare.json",
        md=f"{RES}/compare/{{dataset}}/{{kind}}/compare.md",
        csv=f"{RES}/compare/{{dataset}}/{{kind}}/compare.csv",
        sweep=f"{RES}/compare/{{dataset}}/{{kind}}/sweep.json",
        sweep_csv=f"{RES}/compare/{{dataset}}/{{kind}}/sweep.csv",
    log:
        f"{RES}/compare/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/compare/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=1440,
        gpu=config["gpus"],
    params:
        p=params_for("compare"),
    shell:
        "basis-nmce compare --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --features {input.features:q} --prepared {input.prepared:q}"
        " --out {output.json:q} --threads {threads} 2> {log:q}"
