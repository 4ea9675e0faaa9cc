# Causal lesions (resstream/ablation/; the follow-up paper, arXiv 2504.16290): channels of studied
# blocks held at 0 or their dataset mean, top-1 and logit KL at each scale against size-matched
# random lesions, in one batched pass. Off unless ablation.enabled.  The job's spec (the blocks'
# metric tables, activations.h5 for the mean constants) comes from resstream/ablation/jobs.py.
from resstream.ablation.jobs import ablation_spec

ABLATION = PLAN.config["ablation"]

if ABLATION["enabled"]:
    ABLATION_SPEC = ablation_spec(PLAN)

    rule ablation:
        input:
            **ABLATION_SPEC.input,
        output:
            csv=f"{RESULTS}/ablation/ablation.csv",
            json=f"{RESULTS}/ablation/ablation.json",
            mix=f"{RESULTS}/ablation/mix_classes.csv",
            mix_json=f"{RESULTS}/ablation/mix_classes.json",
            ratios=f"{RESULTS}/ablation/lesion_ratios.csv",
            ratios_json=f"{RESULTS}/ablation/lesion_ratios.json",
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
            **ABLATION_SPEC.resources,
            gpu=gpu_per_job,
        params:
            **ABLATION_SPEC.params,
            gpu_slots=GPU_SLOTS,
            code=code("ablation.py"),
        script:
            "../scripts/ablation.py"

    FINAL_OUTPUTS += list(rules.ablation.output)
