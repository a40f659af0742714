# report: one table (Markdown, CSV, JSON for `dvc metrics`) and the embedding figures.


rule report:
    input:
        ancient(all_metrics()),
    output:
        report(REPORT, caption="../report/report.rst", category="Report"),
        f"{RES}/report/metrics.csv",
        f"{RES}/report/metrics.md",
        f"{RES}/report/metrics.json",
    params:
        p=params_for("report"),
        out=f"{RES}/report",
    log:
        f"{RES}/report/log.txt",
    shell:
        "basis-nmce report --params {params.p:q} --metrics {input:q} --out {params.out:q} 2> {log:q}"
