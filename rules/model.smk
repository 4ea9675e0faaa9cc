# Stage 0: the model card (docs/method.md#taps-i-b-and-o layer table + weights identity). Fails first
# when weights are missing.  The job's spec comes from resstream/model/jobs.py.
from resstream.model.jobs import model_card_spec

CARD_SPEC = model_card_spec(PLAN)


rule model_card:
    output:
        json=f"{RESULTS}/model_card.json",
        csv=f"{RESULTS}/model_card.csv",
    log:
        f"{RESULTS}/logs/model_card.log",
    conda:
        f"{ENVS}/torch.yaml"
    resources:
        **CARD_SPEC.resources,
    params:
        **CARD_SPEC.params,
        code=code("model_card.py"),
    script:
        "../scripts/model_card.py"


FINAL_OUTPUTS += rules.model_card.output
