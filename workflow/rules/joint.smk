# BASiS Algorithm 2 (Sec. 4.3, 5.4): a Siamese feature network and a BASiS spectral network
# trained together from the prepared data, for every data set in run.joint; variant tg is the
# paper's, no_tg the ablation with T_G switched off. The checkpoint lives outside the outputs,
# so a killed job resumes from it.


rule basis_joint:
    input:
        prepared=f"{DATA}/prepared/{{dataset}}.npz",
    output:
        npz=f"{RES}/basis_joint/{{dataset}}/{{variant}}/embedding.npz",
        meta=f"{RES}/basis_joint/{{dataset}}/{{variant}}/embedding.json",
        model=f"{RES}/basis_joint/{{dataset}}/{{variant}}/model.pt",
        model_meta=f"{RES}/basis_joint/{{dataset}}/{{variant}}/model.json",
        log_csv=f"{RES}/basis_joint/{{dataset}}/{{variant}}/log.csv",
        snapshots=f"{RES}/basis_joint/{{dataset}}/{{variant}}/snapshots.npz",
    log:
        f"{RES}/basis_joint/{{dataset}}/{{variant}}/log.txt",
    benchmark:
        f"{RES}/basis_joint/{{dataset}}/{{variant}}/benchmark.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["gpus"],
    params:
        p=params_for("basis_joint"),
        checkpoint=f"{RES}/checkpoints/basis_joint/{{dataset}}/{{variant}}/checkpoint.pt",
    shell:
        "basis-nmce basis_joint --params {params.p:q} --dataset {wildcards.dataset:q}"
        " --prepared {input.prepared:q} --variant {wildcards.variant}"
        " --out {output.npz:q} --checkpoint {params.checkpoint:q} --threads {threads} 2> {log:q}"
