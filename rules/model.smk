# Stage 0: the model card (docs/method.md#taps-i-b-and-o layer table + weights identity). Fails first when weights are missing.
from resstream.model.card import card_facts
from resstream.workflow.job_resources import small_job_mem_mb, small_job_runtime


rule model_card:
    output:
        json=f"{RESULTS}/model_card.json",
        csv=f"{RESULTS}/model_card.csv",
    log:
        f"{RESULTS}/logs/model_card.log",
    conda:
        f"{ENVS}/torch.yaml"
    resources:
        runtime=lambda w, attempt: small_job_runtime(attempt),
        mem_mb=lambda w, attempt: small_job_mem_mb(attempt),
    params:
        model=MODEL,
        card=lambda w: card_facts(STUDY),
        code=code("model_card.py"),
    script:
        "../scripts/model_card.py"


FINAL_OUTPUTS += rules.model_card.output
