# features(dataset, kind): kind raw = flattened, scaled, optional PCA; kind tcr = NMCE stage 1's
# features, embedded with the nmce_tcr model of the same data set (trained once, on raw inputs).


def features_inputs(w):
    inputs = {"prepared": f"{DATA}/prepared/{w.dataset}.npz"}
    if w.kind == "tcr":
        inputs["model"] = f"{RES}/nmce_tcr/{w.dataset}/raw/model.pt"
    return inputs


rule features:
    input:
        unpack(features_inputs),
    output:
        npz=f"{RES}/features/{{dataset}}/{{kind}}/features.npz",
        meta=f"{RES}/features/{{dataset}}/{{kind}}/features.json",
    log:
        f"{RES}/features/{{dataset}}/{{kind}}/log.txt",
    threads: config["threads"]
    params:
        p=params_for("features"),
        model=lambda w, input: _arg("--model", getattr(input, "model", [])),
    shell:
        "basis-nmce features --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --kind {wildcards.kind} --prepared {input.prepared:q} {params.model}"
        " --out {output.npz:q} --threads {threads} 2> {log:q}"
