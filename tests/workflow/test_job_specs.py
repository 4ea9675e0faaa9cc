"""Each rule hands its jobs what its stage's spec (resstream/<stage>/jobs.py) says, and nothing else
but the two values only the workflow knows (the code fingerprint of its script; the GPU slots folder
of a job that loads the network): the finished small run's Snakemake records (the params and inputs
Snakemake stored for each output) against the spec's job, made here from the same config."""

from __future__ import annotations

import json
from base64 import urlsafe_b64encode

import pytest
import yaml

from helpers.configs import merged
from resstream.activations.jobs import activations_spec, dataset_manifest_spec, exemplar_grids_spec
from resstream.analysis.jobs import figure_spec, measure_spec, metric_table_spec, summary_spec
from resstream.atlas.jobs import atlas_block_spec, atlas_index_spec
from resstream.base.code_fingerprint import code_fingerprint
from resstream.data.image_manifest import listed_records, listing_fingerprint
from resstream.fv.jobs import fv_chunk_spec
from resstream.model.jobs import model_card_spec
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan

# (spec, the job's output Snakemake keys its record by, its wildcards, its script, whether it loads the network)
JOBS = [
    (
        lambda plan: fv_chunk_spec(plan),
        "results/fv/layer2.1.bn2/c0000-0063",
        {"layer": "layer2.1.bn2", "chunk": "c0000-0063"},
        "fv_chunk.py",
        True,
    ),
    (
        lambda plan: fv_chunk_spec(plan, "channel"),
        "results/channel_fv/layer2.1.prerelu_out/c0000-0063",
        {"layer": "layer2.1.prerelu_out", "chunk": "c0000-0063"},
        "fv_chunk.py",
        True,
    ),
    (dataset_manifest_spec, "results/dataset/images.tsv", {}, "dataset_manifest.py", False),
    (activations_spec, "results/activations/activations.h5", {}, "activations.py", True),
    (
        exemplar_grids_spec,
        "results/activations/exemplars/layer1.1.bn2",
        {"layer": "layer1.1.bn2"},
        "exemplar_grids.py",
        False,
    ),
    (
        lambda plan: measure_spec(plan, "imagenet"),
        "results/analysis/2.1/imagenet_raw.csv",
        {"block": "2.1"},
        "measure_block.py",
        True,
    ),
    (
        lambda plan: measure_spec(plan, "fv"),
        "results/analysis/1.1/fv_raw.csv",
        {"block": "1.1"},
        "measure_block.py",
        True,
    ),
    (
        metric_table_spec,
        "results/analysis/1.1/fv_table.csv",
        {"block": "1.1", "stimulus": "fv"},
        "metric_table.py",
        False,
    ),
    (summary_spec, "results/summary.json", {}, "analysis_summary.py", False),
    (lambda plan: figure_spec(plan, "fig1"), "results/figures/fig1_channel_grids.png", {}, "figure.py", False),
    (lambda plan: figure_spec(plan, "fig4"), "results/figures/fig4_inhibition.png", {}, "figure.py", False),
    (atlas_block_spec, "results/atlas/1.1", {"block": "1.1"}, "atlas.py", False),
    (atlas_index_spec, "results/atlas/index.html", {}, "atlas.py", False),
    (model_card_spec, "results/model_card.json", {}, "model_card.py", False),
]


def record(run, output: str) -> dict:
    """What Snakemake stored for ``output`` (its file-backed metadata record)."""
    return json.loads((run.root / ".snakemake" / "metadata" / urlsafe_b64encode(output.encode()).decode()).read_text())


@pytest.fixture(scope="module")
def plan(shared_run):
    config = merged(yaml.safe_load((shared_run.root / "demo.yaml").read_text()), shared_run.config)
    return StudyPlan(validate_config(config))


@pytest.fixture
def in_the_run(shared_run, monkeypatch):
    """Where Snakemake planned (the config's paths are relative to it), with the listings of the
    dataset taken there and forgotten after."""
    monkeypatch.chdir(shared_run.root)
    for cache in (listed_records, listing_fingerprint):
        cache.cache_clear()
    yield
    for cache in (listed_records, listing_fingerprint):
        cache.cache_clear()


@pytest.mark.parametrize("make_spec, output, wildcards, script, loads_network", JOBS, ids=[job[1] for job in JOBS])
def test_a_rule_declares_its_spec(shared_run, plan, in_the_run, make_spec, output, wildcards, script, loads_network):
    job = make_spec(plan).job(output={}, **wildcards)
    workflow_only = [code_fingerprint(str(shared_run.root / "scripts" / script), str(shared_run.root / "resstream"))]
    if loads_network:
        workflow_only.append(f"{plan.config['results']}/.gpu_slots")
    stored = record(shared_run, output)
    assert stored["params"] == sorted(repr(value) for value in [*vars(job.params).values(), *workflow_only])
    declared = [path for value in vars(job.input).values() for path in ([value] if isinstance(value, str) else value)]
    assert sorted(stored["input"]) == sorted(declared)
