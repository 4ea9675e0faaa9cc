"""resstream's FV loop is torch-lucent's ``render_vis``, proven step by step.

For one unit of each jitter regime (0, 4, 16), batch 1, the full uncropped forward, a few steps:
lucent's own ``render_vis`` with the author's settings (docs/method.md#feature-visualizations: ``param.image(224,
decorrelate=True)``, the author's transform list written out here, ``preprocess=True``,
``objectives.neuron``, Adam lr 0.05) and :func:`resstream.fv.render.render_units` are fed identical random
draws: lucent's global torch generator is seeded with the unit's seed (resstream draws the unit's
spectrum from a generator seeded the same way) and numpy's global state is set to the unit's own
RandomState that resstream swaps in around the transforms.  The objective at every step and the
image after the last step must then agree, so a different transform order, colour decorrelation,
fft parameterisation, normalisation or objective fails the test.

The units read tensors lucent's reference-holding hooks see correctly (downsample outputs); one
more case checks that ``fv.hook: author_alias`` on a branch BN reproduces lucent's aliased
reading (docs/method.md#taps-i-b-and-o).  The second test: the receptive-field crop and batching leave each unit's result
unchanged within float tolerance.
"""

import copy

import numpy as np
import pytest
import torch
from lucent.optvis import objectives, param, render
from lucent.optvis import transform as lt
from torchvision.transforms import CenterCrop

from resstream.fv import render as fv
from resstream.model.blocks import TapRef
from resstream.model.walk import model_blocks
from resstream.workflow.plan import schema_fv_settings

STEPS = 4
SCALES = [1, 0.975, 1.025, 0.95, 1.05]  # docs/method.md#feature-visualizations, the author's center_lucent_optimize.py
ANGLES = list(range(-5, 6))
UNITS = [  # (layer, tap, jitter, hook, channel)
    ("layer2.0.downsample.1", TapRef("2.0", "D"), 0, "intended", 5),
    ("layer3.0.downsample.1", TapRef("3.0", "D"), 4, "intended", 9),
    ("layer4.0.downsample.1", TapRef("4.0", "D"), 16, "intended", 300),
    ("layer2.1.bn2", TapRef("2.1", "B"), 4, "author_alias", 7),
]


def author_transforms(jitter: int) -> list:
    """docs/method.md#feature-visualizations: j < 4: random scale, random rotate (no crop); j >= 4: pad(j, reflect), jitter(j),
    scale, rotate, jitter(j // 2), CenterCrop(224) (torchvision's, as the author's HEAD)."""
    scale, rotate = lt.random_scale(SCALES), lt.random_rotate(ANGLES)
    if jitter < 4:
        return [scale, rotate]
    return [lt.pad(jitter, mode="reflect"), lt.jitter(jitter), scale, rotate, lt.jitter(jitter // 2), CenterCrop(224)]


def lucent_run(model, layer: str, channel: int, jitter: int, seed: int, numpy_state, steps: int = STEPS):
    """lucent's render_vis on one unit: ``(objective per step [steps], image [3, 224, 224])``."""
    model = copy.deepcopy(model)  # render_vis leaves its hooks on the model
    neuron = objectives.neuron(layer.replace(".", "_"), channel)
    values = []

    def objective(hook):
        loss = neuron(hook)
        values.append(-float(loss.detach()))
        return loss

    torch.manual_seed(seed)
    np.random.set_state(numpy_state)
    images = render.render_vis(
        model, objective, param_f=lambda: param.image(224, decorrelate=True), transforms=author_transforms(jitter),
        thresholds=(steps,), preprocess=True, progress=False, show_image=False,
    )
    return np.asarray(values, dtype=np.float32), images[-1][0].transpose(2, 0, 1)


def compare(model, layer, ref, jitter, hook, channel, steps: int = STEPS) -> tuple[float, float]:
    """``(largest objective difference, largest pixel difference)`` of the two loops."""
    blocks = model_blocks(model)
    ours = fv.render_units(model, blocks, layer, ref, [channel], **schema_fv_settings(
        steps=steps, jitter=jitter, hook=hook, rf_crop=False, channels_last=False, microbatch=1))
    seed = ours.seeds[0]
    theirs_curve, theirs_image = lucent_run(model, layer, channel, jitter, seed, fv.UnitRandom([seed]).states[0], steps)
    return float(np.abs(ours.curve[0] - theirs_curve).max()), float(np.abs(ours.images[0] - theirs_image).max())


@pytest.fixture(scope="module")
def model():
    from resstream.model.weights import load_model

    return load_model("resnet18", "random:0")[0]


@pytest.mark.parametrize("layer,ref,jitter,hook,channel", UNITS, ids=[f"{u[0]}-j{u[2]}-{u[3]}" for u in UNITS])
def test_fv_loop_equals_lucent_render_vis(model, layer, ref, jitter, hook, channel):
    curve_diff, image_diff = compare(model, layer, ref, jitter, hook, channel)
    assert curve_diff <= 1e-5 and image_diff <= 1e-5, (curve_diff, image_diff)


@pytest.mark.parametrize("layer,ref,jitter,channel", [(u[0], u[1], u[2], u[4]) for u in UNITS[:3]],
                         ids=[f"j{u[2]}" for u in UNITS[:3]])
def test_crop_and_batching_leave_each_unit_unchanged(model, layer, ref, jitter, channel):
    """The unit alone, full image, batch 1 against the job's way: receptive-field crop and the unit
    in a batch of five with all units in one forward (the GPU default)."""
    blocks = model_blocks(model)
    alone = fv.render_units(model, blocks, layer, ref, [channel],
                            **schema_fv_settings(steps=STEPS, jitter=jitter, rf_crop=False, microbatch=1))
    others = [channel + 1, channel + 2, channel + 3, channel + 4]
    batch = fv.render_units(model, blocks, layer, ref, [channel] + others,
                            **schema_fv_settings(steps=STEPS, jitter=jitter, rf_crop=True, microbatch=5))
    np.testing.assert_allclose(batch.curve[0], alone.curve[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(batch.images[0], alone.images[0], rtol=0, atol=1e-4)
