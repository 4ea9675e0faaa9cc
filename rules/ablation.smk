# Causal lesions (resstream/ablation/; the follow-up paper, arXiv 2504.16290): channels of studied
# blocks held at 0 or their dataset mean, top-1 and logit KL at each scale against size-matched
# random lesions, in one batched pass. Off unless ablation.enabled. The sets come from the blocks'
# metric tables (list sets need none), the mean constants from activations.h5.
import os

from resstream.analysis.summary import metric_table_csv
from resstream.base.paths import activations_h5
from resstream.workflow.job_resources import pass_mem_mb, pass_runtime

ABLATION = STUDY.config["ablation"]

if ABLATION["enabled"]:
    ABLATION_DATASET = ABLATION["dataset"] or STUDY.config["dataset"]["path"]
    ABLATION_TABLES = {
        b: (
            metric_table_csv(RESULTS, b, ABLATION["table"])
            if set(ABLATION["sets"]) - {"list"}
            else None
        )
        for b in ABLATION["blocks"]
    }
    ABLATION_MEANS = "mean" in ABLATION["kinds"]
    # forwards per image: the plain network and each condition (target + trials) per scale
    ABLATION_FORWARDS = len(ABLATION["scales"]) * (
        1
        + len(ABLATION["blocks"])
        * len(ABLATION["sets"])
        * len(ABLATION["kinds"])
        * len(ABLATION["paths"])
        * (1 + ABLATION["trials"])
    )

    rule ablation:
        input:
            tables=[t for t in ABLATION_TABLES.values() if t],
            h5=[activations_h5(RESULTS)] if ABLATION_MEANS else [],
        output:
            csv=f"{RESULTS}/ablation/ablation.csv",
            json=f"{RESULTS}/ablation/ablation.json",
            mix=f"{RESULTS}/ablation/mix_classes.csv",
            ratios=f"{RESULTS}/ablation/lesion_ratios.csv",
            png=report(
                f"{RESULTS}/ablation/ablation.png",
                caption="../report/ablation.rst",
                category="Lesions",
            ),
            pdf=f"{RESULTS}/ablation/ablation.pdf",
        log:
            f"{RESULTS}/logs/ablation.log",
        benchmark:
            f"{RESULTS}/benchmarks/ablation.tsv"
        conda:
            f"{ENVS}/torch.yaml"
        threads: ABLATION["threads"]
        resources:
            batch_size=ABLATION["batch_size"],
            workers=ABLATION["workers"],
            gpu=gpu_per_job,
            runtime=lambda w, attempt: pass_runtime(
                dataset_images(ABLATION_DATASET) * ABLATION_FORWARDS, attempt
            ),
            mem_mb=lambda w, attempt: pass_mem_mb(
                ABLATION["batch_size"] * len(ABLATION["scales"]),
                ABLATION["workers"],
                0,
                attempt,
            ),
        params:
            model=MODEL,
            device=DEVICE,
            dataset=ABLATION_DATASET,
            activations=lambda w, input: input.h5[0] if input.h5 else None,
            tables=ABLATION_TABLES,
            layers={b: STUDY.block_layers(b) for b in ABLATION["blocks"]},
            settings={
                k: v
                for k, v in ABLATION.items()
                if k not in ("batch_size", "workers", "threads", "enabled")
            },
            gpu_slots=GPU_SLOTS,
            code=code("ablation.py"),
        script:
            "../scripts/ablation.py"

    FINAL_OUTPUTS += list(rules.ablation.output)
