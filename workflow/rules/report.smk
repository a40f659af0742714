# report: one table (Markdown, CSV, JSON for `dvc metrics`) and the embedding figures.


rule report:
    input:
        metrics=all_metrics(),
        training=training_logs(),
    output:
        report(REPORT, caption="../report/report.rst", category="Report"),
        f"{RES}/report/metrics.csv",
        f"{RES}/report/metrics.md",
        f"{RES}/report/metrics.json",
    log:
        f"{RES}/report/log.txt",
    params:
        p=params_for("report"),
        out=f"{RES}/report",
    shell:
        "basis-nmce report --params {params.p:q} --metrics {input.metrics:q} --out {params.out:q} 2> {log:q}"
