# Stage 0: the model card (spec §1 layer table + weights identity). Fails first when weights are missing.


rule model_card:
    output:
        json=f"{RESULTS}/model_card.json",
        csv=f"{RESULTS}/model_card.csv",
    log:
        f"{RESULTS}/logs/model_card.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        model=STUDY.config["model"],
        study=STUDY.config["study"],
    script:
        "../scripts/model_card.py"


FINAL_OUTPUTS += rules.model_card.output
