# report: one table (Markdown, CSV, HTML, JSON for `dvc metrics`), the comparison and training
# logs that `dvc plots` draws, and the figures. `snakemake --report report.html` shows the HTML
# table and every figure with the captions in workflow/report/.


rule report:
    input:
        metrics=all_metrics(),
        training=training_logs(),
        compare=all_compares(),
        joint=joint_outputs(),
        joint_files=joint_files(),
    output:
        md=REPORT,
        csv=f"{RES}/report/metrics.csv",
        table_md=f"{RES}/report/metrics.md",
        json=f"{RES}/report/metrics.json",
        compare_json=f"{RES}/report/compare.json",
        comparison=f"{RES}/report/comparison.csv",
        html=report(
            f"{RES}/report/metrics.html",
            caption="../report/metrics.rst",
            category="Tables",
            labels={"table": "metrics of every run"},
        ),
        training=directory(f"{RES}/report/training"),
        figures=report(
            directory(f"{RES}/report/figures"),
            patterns=[
                "{dataset,[^/]+}/{features,[^/]+}/{method,[^/]+}/{figure,[a-z]+}.png"
            ],
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{figure}",
            labels={
                "data set": "{dataset}",
                "features": "{features}",
                "method": "{method}",
            },
        ),
    log:
        f"{RES}/report/log.txt",
    benchmark:
        f"{RES}/report/benchmark.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        p=params_for("report"),
        out=lambda w, output: os.path.dirname(output.md),
        compare=lambda w, input: _arg("--compare", input.compare),
        joint=lambda w, input: _arg("--joint", input.joint),
    shell:
        "basis-nmce report --params {params.p:q} --metrics {input.metrics:q}"
        " {params.compare} {params.joint} --out {params.out:q} 2> {log:q}"
