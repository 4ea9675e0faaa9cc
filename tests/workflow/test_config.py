import math

import pytest
import yaml

from helpers import REPO
from helpers.configs import merged
from resstream.base.errors import ConfigError
from resstream.workflow.config import load_config, validate_config
from resstream.workflow.plan import StudyPlan


def full_config(**over):
    """The paper study (config.yaml) with ``over`` merged in."""
    return merged(load_config(REPO / "config.yaml"), over)


def test_full_study_is_the_papers_4672_units():
    study = StudyPlan(full_config())
    assert study.study_blocks == ["1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"]
    assert len(study.layers) == 18
    assert sum(len(study.layer_channels(l)) for l in study.layers) == 4672
    assert sum(len(c.channels) for l in study.layers for c in study.chunks(l)) == 4672


def test_default_jitter_matches_spec_table():
    study = StudyPlan(full_config(study={"o_relu": "post"}))
    by_j = {}
    for layer in study.layers:
        by_j.setdefault(study.fv_settings(layer).jitter, []).append(layer)
    assert by_j[0] == ["layer1.0", "layer1.1.bn2", "layer1.1", "layer2.0.downsample.1", "layer2.0.bn2", "layer2.0"]
    assert by_j[4] == ["layer2.1.bn2", "layer2.1", "layer3.0.downsample.1", "layer3.0.bn2", "layer3.0"]
    assert len(by_j[16]) == 7 and by_j[16][0] == "layer3.1.bn2"


def test_overrides_touch_only_their_block_or_layer():
    cfg = full_config(fv={"overrides": {"2.1": {"jitter": 8, "steps": 10}, "layer2.1.bn2": {"steps": 5}}})
    study = StudyPlan(cfg)
    assert study.fv_settings("layer2.1.bn2").steps == 5 and study.fv_settings("layer2.1.bn2").jitter == 8
    assert study.fv_settings("layer2.1.prerelu_out").steps == 10
    # 2.1's I is 2.0's O: it belongs to block 2.0 and keeps its settings
    assert study.fv_settings("layer2.0.prerelu_out").steps == 2560


@pytest.mark.parametrize(
    "patch,key",
    [
        ({"study": {"blocks": ["5.0"]}}, "study.blocks.0"),
        ({"fv": {"steps": -3}}, "fv.steps"),
        ({"fv": {"hook": "reference"}}, "fv.hook"),
        ({"model": {"arch": 18}}, "model.arch"),  # a name outside the families: ArchError, test_families.py
    ],
)
def test_schema_errors_name_the_key(patch, key):
    with pytest.raises(ConfigError) as err:
        validate_config(patch)
    assert str(err.value).startswith(f"invalid config: {key}:")


def test_unknown_block_and_channel_out_of_range():
    with pytest.raises(ConfigError, match=r"study.blocks: unknown block '2.2'"):
        StudyPlan(validate_config({"study": {"blocks": ["2.2"]}}))
    with pytest.raises(ConfigError, match=r"study.channels: channel\(s\) \[64\] out of range for block 1.1"):
        StudyPlan(validate_config({"study": {"blocks": ["1.1"], "channels": [3, 64]}})).block_channels("1.1")
    with pytest.raises(ConfigError, match="fv.overrides: '4.1'"):
        StudyPlan(validate_config({"study": {"blocks": ["1.1"]}, "fv": {"overrides": {"4.1": {"steps": 3}}}}))


def test_chunks_are_channel_ranges():
    study = StudyPlan(
        validate_config(
            {"study": {"blocks": ["3.1"], "channels_by_block": {"3.1": [178, 215, 25]}}, "fv": {"channels_per_job": 64}}
        )
    )
    names = [(c.name, c.channels) for c in study.chunks("layer3.1.bn2")]
    assert names == [("c0000-0063", (25,)), ("c0128-0191", (178,)), ("c0192-0255", (215,))]


def test_demo_config_is_valid():
    with open(REPO / "demo.yaml") as f:
        cfg = validate_config(yaml.safe_load(f))
    assert cfg["model"]["weights"].startswith("random:")
    StudyPlan(cfg)


def test_command_line_strings_are_typed_by_the_schema():
    """What snakemake.cli.parse_config makes of --config values (nested values stay strings)."""
    from snakemake.cli import parse_config

    from resstream.workflow.config_types import coerce_command_line

    given = parse_config(
        [
            "analysis={mix_factor: 2}",
            'fv={overrides: {"2.1": {steps: 3}}, microbatch: null, lr: 0.1}',
            "activations={spatial_layers: [layer1.1.bn2]}",
            "demo=true",
            "results=2",
            "dataset={path: 1234}",
            "study={channels: [0, 3], blocks: default}",
            "atlas={enabled: no}",
        ]
    )
    assert given["analysis"]["mix_factor"] == "2" and given["fv"]["overrides"]["2.1"]["steps"] == "3"
    config = {"fv": {"steps": 7}}
    coerce_command_line(config, given)
    assert config["analysis"] == {"mix_factor": 2}
    assert config["fv"] == {"steps": 7, "overrides": {"2.1": {"steps": 3}}, "microbatch": None, "lr": 0.1}
    assert config["demo"] is True and config["atlas"] == {"enabled": False}
    assert config["study"] == {"channels": [0, 3], "blocks": "default"}  # oneOf: the list of integers, the enum
    # strings the schema takes stay strings: paths, layer names, a results folder named "2"
    assert config["results"] == "2" and config["dataset"] == {"path": "1234"}
    assert config["activations"] == {"spatial_layers": ["layer1.1.bn2"]}
    validate_config(config)


def test_a_command_line_value_of_the_wrong_type_is_still_named():
    from resstream.workflow.config_types import coerce_command_line

    config = {}
    coerce_command_line(config, {"analysis": {"mix_factor": "two"}, "fv": {"steps": "2.5"}})
    assert config == {"analysis": {"mix_factor": "two"}, "fv": {"steps": "2.5"}}
    with pytest.raises(
        ConfigError,
        match=r"^invalid config: analysis.mix_factor: 'two' is not of type 'number' \| fv.steps: '2.5' is not of type 'integer'$",
    ):
        validate_config(config)


def test_the_pass_budgets_the_full_maps_of_its_spatial_layers_by_hand():
    """One image's full float16 maps, each layer at its block's output size and channels: resnet18's
    layer1.1.bn2 is 64 x 56 x 56, layer2.1.prerelu_out 128 x 28 x 28; resnet50's layer1.1.bn3 (a
    Bottleneck's wide output) 256 x 56 x 56."""
    from resstream.activations.store import expected_bytes

    assert StudyPlan(full_config()).spatial_bytes_per_image() == 0
    r18 = StudyPlan(full_config(activations={"spatial_layers": ["layer1.1.bn2", "layer2.1.prerelu_out"]}))
    assert r18.spatial_bytes_per_image() == 2 * (64 * 56 * 56 + 128 * 28 * 28)
    r50 = StudyPlan(full_config(model={"arch": "resnet50"}, activations={"spatial_layers": ["layer1.1.bn3"]}))
    assert r50.spatial_bytes_per_image() == 2 * 256 * 56 * 56

    class Layer:  # what the pass records of a tapped layer
        def __init__(self, name, channels, height, width):
            self.name, self.channels, self.height, self.width = name, channels, height, width

    layers = [Layer("layer1.1.bn2", 64, 56, 56), Layer("layer2.1.prerelu_out", 128, 28, 28)]
    without = expected_bytes(10, layers, [], topk=9)
    assert (
        expected_bytes(10, layers, ["layer1.1.bn2", "layer2.1.prerelu_out"], topk=9) - without
        == 10 * r18.spatial_bytes_per_image()
    )


def test_snakemakes_process_lists_the_dataset_once(sample_dir, monkeypatch):
    """The pre-flight check, every job's budget (the pass's runtime, the measurements' memory) and
    the image manifest's fingerprint read one listing of the dataset: a large folder is not listed
    again for each."""
    from resstream.data import image_folder, image_manifest
    from resstream.workflow.smk import check_inputs_or_exit

    listings = []
    scan = image_folder.scan_image_folder
    monkeypatch.setattr(image_folder, "scan_image_folder", lambda root: listings.append(root) or scan(root))
    image_manifest.listed_records.cache_clear()
    study = StudyPlan(validate_config({"model": {"weights": "random:0"}, "dataset": {"path": str(sample_dir)}}))
    check_inputs_or_exit(study, dry_run=True)
    counts = {image_manifest.dataset_images(str(sample_dir)) for _ in range(3)}
    image_manifest.listing_fingerprint.cache_clear()
    assert len(image_manifest.listing_fingerprint(str(sample_dir))) == 64
    assert counts == {len(scan(sample_dir))} and listings == [str(sample_dir)]
    image_manifest.listed_records.cache_clear()


def _numeric_specs(spec, path=""):
    """(path, spec) of every integer or number in the schema, $defs and nested objects included."""
    if isinstance(spec, dict):
        kind = spec.get("type", [])
        if {"integer", "number"} & set([kind] if isinstance(kind, str) else kind):
            yield path, spec
        for key, sub in spec.items():
            yield from _numeric_specs(sub, f"{path}/{key}")
    elif isinstance(spec, list):
        for i, sub in enumerate(spec):
            yield from _numeric_specs(sub, f"{path}/{i}")


def test_every_number_in_the_schema_has_a_finite_range():
    from resstream.base.schema import load_schema

    specs = dict(_numeric_specs(load_schema()))
    assert len(specs) >= 26  # every section's numbers, not a walk that found nothing
    for path, spec in specs.items():
        low = spec.get("minimum", spec.get("exclusiveMinimum"))
        high = spec.get("maximum", spec.get("exclusiveMaximum"))
        assert low is not None and high is not None and low < high, path
        if "default" in spec and spec["default"] is not None:
            assert low <= spec["default"] <= high, path


@pytest.mark.parametrize(
    "text,line",
    [
        (
            "fv: {lr: .inf}",
            "invalid config: fv.lr: inf is not a finite number; fv.lr takes a finite number with 0 < lr <= 10",
        ),
        (
            "fv: {lr: .nan}",
            "invalid config: fv.lr: nan is not a finite number; fv.lr takes a finite number with 0 < lr <= 10",
        ),
        (
            "analysis: {mix_factor: -.inf}",
            "invalid config: analysis.mix_factor: -inf is not a finite number; analysis.mix_factor takes a finite number "
            "with 1 < mix_factor <= 1000",
        ),
        (
            "fv: {overrides: {'2.1': {lr: .nan}}}",
            "invalid config: fv.overrides.2.1.lr: nan is not a finite number; fv.overrides.2.1.lr takes a finite number "
            "with 0 < lr <= 10",
        ),
        (
            "fv: {steps: .inf}",
            "invalid config: fv.steps: inf is not a finite number; fv.steps takes an integer with 1 <= steps <= 100000",
        ),
        (
            "activations: {batch_size: 100000000}",
            "invalid config: activations.batch_size: 100000000 is out of range; activations.batch_size takes an integer "
            "with 1 <= batch_size <= 1024",
        ),
        (
            "fv: {microbatch: 0}",
            "invalid config: fv.microbatch: 0 is out of range; fv.microbatch takes an integer with "
            "1 <= microbatch <= 4096 (or null)",
        ),
        (
            "fv: {steps: 2.5}",
            "invalid config: fv.steps: 2.5 is not an integer; fv.steps takes an integer with 1 <= steps <= 100000",
        ),
        (
            "study: {channels: .inf}",
            "invalid config: study.channels: inf is not a finite number; study.channels takes an "
            "integer with 1 <= channels <= 65536",
        ),  # of its oneOf, the number's alternative
        (
            "study: {channels: [0, 70000]}",
            "invalid config: study.channels.1: 70000 is out of range; study.channels.1 takes "
            "an integer with 0 <= value <= 65535",
        ),
    ],
)
def test_a_number_out_of_range_or_not_finite_is_one_line_with_the_range(text, line):
    with pytest.raises(ConfigError) as err:
        validate_config(yaml.safe_load(text))
    assert str(err.value) == line


@pytest.mark.parametrize(
    "given,line",
    [
        (
            "fv={lr: inf}",
            "invalid config: fv.lr: inf is not a finite number; fv.lr takes a finite number with 0 < lr <= 10",
        ),
        (
            "fv={lr: nan}",
            "invalid config: fv.lr: nan is not a finite number; fv.lr takes a finite number with 0 < lr <= 10",
        ),
        (
            "analysis={mix_factor: 1e999}",
            "invalid config: analysis.mix_factor: inf is not a finite number; analysis.mix_factor takes a finite number "
            "with 1 < mix_factor <= 1000",
        ),
    ],
)
def test_non_finite_command_line_values_are_refused(given, line):
    """--config values reach the workflow as strings ('inf'); typed by the schema they are refused."""
    from snakemake.cli import parse_config

    from resstream.workflow.config_types import coerce_command_line

    config = {}
    coerce_command_line(config, parse_config([given]))
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert str(err.value) == line


def test_no_job_declares_an_absurd_memory_at_the_schemas_largest_values():
    """The pass's and an FV chunk's mem_mb at the largest batch, workers and chunk the schema allows
    (spatial maps of the largest layer1 map of ResNet18, 64 x 56 x 56, float16): under 64 GB."""
    from resstream.base.job_resources import fv_mem_mb, pass_mem_mb
    from resstream.base.schema import section_properties

    acts, fv = section_properties("activations"), section_properties("fv")
    largest = pass_mem_mb(acts["batch_size"]["maximum"], acts["workers"]["maximum"], 64 * 56 * 56 * 2)
    assert largest == 3000 + 1024 * 12 + math.ceil(1024 * 2 * 64 * 56 * 56 * 2 / 1e6) + 500 * 64
    assert largest < 64_000
    assert fv_mem_mb(fv["channels_per_job"]["maximum"]) == 3000 + 5 * 4096


@pytest.mark.parametrize(
    "config,line",
    [
        ({"analysis": {"mix_factr": 2}}, "unknown key `analysis.mix_factr`; did you mean `mix_factor`?"),
        ({"anlysis": {"mix_factor": 2}}, "unknown key `anlysis`; did you mean `analysis`?"),
        ({"fv": {"overrides": {"2.1": {"stepz": 3}}}}, "unknown key `fv.overrides.2.1.stepz`; did you mean `steps`?"),
        (
            {"model": {"weigths": "random:0", "arhc": "resnet18"}},
            "unknown key `model.arhc`; did you mean `arch`? | unknown key `model.weigths`; did you mean `weights`?",
        ),
        (
            {"fv": {"batch_size": 8}},
            "unknown key `fv.batch_size`; the keys of `fv` are steps, lr, hook, seed, "
            "channels_per_job, threads, rf_crop, bf16, tf32, microbatch, channels_last, "
            "log_every, overrides",
        ),
        (
            {"zzz": 1},
            "unknown key `zzz`; the keys at the top level are results, demo, model, study, dataset, fv, "
            "activations, dictionary, analysis, atlas, compare, ablation",
        ),
    ],
)
def test_an_unknown_key_is_named_with_the_closest_known_key(config, line):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert str(err.value) == line
