# features(dataset, kind): kind raw = flattened, scaled, optional PCA; kind siamese = the BASiS
# paper's Siamese network (its checkpoint outside the outputs, resumed on rerun); kind tcr =
# NMCE stage 1's features, embedded with the nmce_tcr model of the same data set
# (features_inputs).


rule features:
    input:
        unpack(features_inputs),
    output:
        npz=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        meta=f"{RES}/features/{{dataset}}/{{kind}}/features.json",
    log:
        f"{RES}/features/{{dataset}}/{{kind}}/log.txt",
    benchmark:
        f"{RES}/features/{{dataset}}/{{kind}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        p=params_for("features"),
        model=lambda w, input: _arg("--model", getattr(input, "model", [])),
        checkpoint=lambda w: _arg(
            "--checkpoint",
            (
                [f"{RES}/checkpoints/features/{w.dataset}/{w.kind}/checkpoint.pt"]
                if w.kind == "siamese"
                else []
            ),
        ),
    shell:
        "basis-nmce features --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --kind {wildcards.kind} --prepared {input.prepared:q} {params.model}"
        " {params.checkpoint} --out {output.npz:q} --threads {threads} 2> {log:q}"
