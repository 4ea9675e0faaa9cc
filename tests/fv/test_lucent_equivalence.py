"""resstream's FV loop is torch-lucent's ``render_vis``, proven step by step for every tap.

For one unit of each tap kind (a block's input X, which is the previous block's output O_post, the
downsample output D, the branch B, the pre-ReLU sum O_pre) and each jitter regime (0, 4, 16), batch
1, the full uncropped forward,
32 steps: lucent's own ``render_vis`` with the author's settings (``param.image(224,
decorrelate=True)``, the author's transform list written out here, ``preprocess=True``,
``objectives.neuron``, Adam lr 0.05) and :func:`resstream.fv.render.render_units` are fed identical
random draws: lucent's global torch generator is seeded with the unit's seed (resstream draws the
unit's spectrum from a generator seeded the same way) and numpy's global state is set to the unit's
own RandomState that resstream swaps in around the transforms.  The objective at every step, the
image and its PNG must then be bit-identical, so a different transform order, colour decorrelation,
fft parameterisation, normalisation or objective fails the test.

Lucent's hooks keep a reference to a module's output, which the block's ``out += identity`` and
in-place ReLU later overwrite.  So that lucent reads the tensor resstream's copying taps read, its
model is wrapped: the branch BN as ``Sequential(bn2, Clone)`` (lucent hooks the BN inside, whose
output nothing overwrites any more) and the block's ReLU as ``Sequential(Clone, ReLU(inplace=False))``
(lucent hooks the Clone, which sees the pre-ReLU sum in the ReLU's last call).  One more case checks
that ``fv.hook: author_alias`` on a branch BN reproduces lucent's aliased reading of the plain model.

With the receptive-field crop on, the first step's gradient equals the uncropped one to float
precision; later steps drift (Adam amplifies rounding), which the crop-and-batching test bounds at 4 steps.
"""

import copy
import io

import numpy as np
import pytest
import torch
from lucent.optvis import objectives, param, render
from lucent.optvis import transform as lt
from PIL import Image
from torchvision.transforms import CenterCrop

from resstream.fv import render as fv
from resstream.model.blocks import TapRef
from resstream.model.walk import model_blocks
from resstream.workflow.plan import schema_fv_settings

STEPS = 4  # the crop-and-batching test
LUCENT_STEPS = 32  # the equivalence tests: long enough for Adam to amplify any difference in the last bit
SCALES = [1, 0.975, 1.025, 0.95, 1.05]  # the author's center_lucent_optimize.py
ANGLES = list(range(-5, 6))
# One unit per tap kind, each jitter regime among them.  X of 1.1 is 1.0's output O_post: lucent
# hooks a block's output as any module's (2.1's output at jitter 4 was also bit-identical over 32
# steps; as a unit of its own it added minutes, not coverage).
UNITS = [  # (layer, tap, jitter, hook, channel, how lucent's model is wrapped: None | "clone_branch" | "clone_sum")
    ("layer1.0", TapRef("1.1", "X"), 0, "intended", 15, None),
    ("layer2.0.downsample.1", TapRef("2.0", "D"), 0, "intended", 5, None),
    ("layer3.0.downsample.1", TapRef("3.0", "D"), 4, "intended", 9, None),
    ("layer2.1.bn2", TapRef("2.1", "B"), 4, "intended", 7, "clone_branch"),
    ("layer3.1.prerelu_out", TapRef("3.1", "O_pre"), 16, "intended", 11, "clone_sum"),
    ("layer2.1.bn2", TapRef("2.1", "B"), 4, "author_alias", 7, None),
]


class Clone(torch.nn.Module):
    """A copy of its input (differentiable): what a later in-place operation changes is not it."""

    def forward(self, x):
        return x.clone()


def lucent_model(model, layer: str, wrap: str | None):
    """``(model, lucent's name of the hooked module)``: a copy (render_vis leaves its hooks on the
    model) wrapped so that the hooked tensor is the one resstream reads (see the module docstring).
    The stages after the target's are left out (as resstream stops its forward at the target): they
    take no part in the objective or its gradient, only in the test's time."""
    model = copy.deepcopy(model)
    for stage in range(int(layer[5]) + 1, 5):
        setattr(model, f"layer{stage}", torch.nn.Identity())
    model.fc = torch.nn.Identity()
    if wrap is None:
        return model, layer.replace(".", "_")
    block = model.get_submodule(layer.rsplit(".", 1)[0])
    if wrap == "clone_branch":  # bn2's own output, never overwritten: the sum is made from the copy
        block.bn2 = torch.nn.Sequential(block.bn2, Clone())
        return model, layer.replace(".", "_") + "_0"
    block.relu = torch.nn.Sequential(Clone(), torch.nn.ReLU(inplace=False))  # clone_sum: its last call is the sum's
    return model, layer.rsplit(".", 1)[0].replace(".", "_") + "_relu_0"


def author_transforms(jitter: int) -> list:
    """The author's transforms: j < 4: random scale, random rotate (no crop); j >= 4: pad(j, reflect), jitter(j),
    scale, rotate, jitter(j // 2), CenterCrop(224) (torchvision's, as the author's HEAD)."""
    scale, rotate = lt.random_scale(SCALES), lt.random_rotate(ANGLES)
    if jitter < 4:
        return [scale, rotate]
    return [lt.pad(jitter, mode="reflect"), lt.jitter(jitter), scale, rotate, lt.jitter(jitter // 2), CenterCrop(224)]


def lucent_run(
    model, layer: str, channel: int, jitter: int, seed: int, numpy_state, steps: int, wrap: str | None = None
):
    """lucent's render_vis on one unit: ``(objective per step [steps], image [3, 224, 224])``."""
    model, hooked = lucent_model(model, layer, wrap)
    neuron = objectives.neuron(hooked, channel)
    values = []

    def objective(hook):
        loss = neuron(hook)
        values.append(-float(loss.detach()))
        return loss

    torch.manual_seed(seed)
    np.random.set_state(numpy_state)
    images = render.render_vis(
        model,
        objective,
        param_f=lambda: param.image(224, decorrelate=True),
        transforms=author_transforms(jitter),
        thresholds=(steps,),
        preprocess=True,
        progress=False,
        show_image=False,
    )
    return np.asarray(values, dtype=np.float32), images[-1][0].transpose(2, 0, 1)


def ours_run(model, layer, ref, jitter, hook, channel, steps: int, rf_crop: bool = False):
    blocks = model_blocks(model)
    return fv.render_units(
        model,
        blocks,
        layer,
        ref,
        [channel],
        **schema_fv_settings(steps=steps, jitter=jitter, hook=hook, rf_crop=rf_crop, channels_last=False, microbatch=1),
    )


def png_bytes(uint8_hwc: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(uint8_hwc).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def model():
    from resstream.model.weights import load_model

    return load_model("resnet18", "random:0")[0]


@pytest.mark.parametrize(
    "layer,ref,jitter,hook,channel,wrap", UNITS, ids=[f"{u[1].tensor}-{u[0]}-j{u[2]}-{u[3]}" for u in UNITS]
)
def test_fv_loop_is_bit_identical_to_lucent_render_vis(model, layer, ref, jitter, hook, channel, wrap):
    ours = ours_run(model, layer, ref, jitter, hook, channel, LUCENT_STEPS)
    seed = ours.seeds[0]
    curve, image = lucent_run(model, layer, channel, jitter, seed, fv.UnitRandom([seed]).states[0], LUCENT_STEPS, wrap)
    np.testing.assert_array_equal(ours.curve[0], curve)
    np.testing.assert_array_equal(ours.images[0], image)
    lucent_png = (image.transpose(1, 2, 0) * 255).astype(np.uint8)  # the author's save: truncation
    assert png_bytes(ours.png_arrays()[0]) == png_bytes(lucent_png)
    assert curve[-1] > curve[0]  # the objective rose: the steps did something


def first_gradients(monkeypatch) -> list:
    """Record the spectrum's gradient at every Adam step (the first is what the crop may change)."""
    seen, step = [], torch.optim.Adam.step

    def record(optimizer):
        seen.append([p.grad.detach().clone() for group in optimizer.param_groups for p in group["params"]])

    def recording(self, closure=None):
        if closure is None:  # resstream: backward done before the step
            record(self)
            return step(self)

        def backward_then_record():  # lucent: the closure runs the forward and backward inside step
            loss = closure()
            record(self)
            return loss

        return step(self, backward_then_record)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    return seen


@pytest.mark.parametrize("layer,ref,jitter,hook,channel,wrap", [UNITS[1], UNITS[3]], ids=["D-j0", "B-j4-clone_branch"])
def test_crop_on_first_gradient_equals_lucent_to_float_precision(
    model, monkeypatch, layer, ref, jitter, hook, channel, wrap
):
    """The receptive-field crop computes the same first gradient as lucent's full image (to float
    rounding: the cropped convolutions sum in another order); Adam then amplifies that rounding."""
    grads = first_gradients(monkeypatch)
    ours = ours_run(model, layer, ref, jitter, hook, channel, 1, rf_crop=True)
    seed = ours.seeds[0]
    lucent_run(model, layer, channel, jitter, seed, fv.UnitRandom([seed]).states[0], 1, wrap)
    (cropped,), (full,) = grads
    assert cropped.shape == full.shape and float(full.abs().max()) > 0
    np.testing.assert_allclose(cropped.numpy(), full.numpy(), rtol=0, atol=1e-5 * float(full.abs().max()))


CROP_UNITS = [(u[0], u[1], u[2], u[4]) for u in UNITS[1:3]] + [("layer4.0.downsample.1", TapRef("4.0", "D"), 16, 300)]


@pytest.mark.parametrize("layer,ref,jitter,channel", CROP_UNITS, ids=[f"j{u[2]}" for u in CROP_UNITS])
def test_crop_and_batching_leave_each_unit_unchanged(model, layer, ref, jitter, channel):
    """The unit alone, full image, batch 1 against the job's way: receptive-field crop and the unit
    in a batch of five with all units in one forward (the GPU default)."""
    blocks = model_blocks(model)
    alone = fv.render_units(
        model,
        blocks,
        layer,
        ref,
        [channel],
        **schema_fv_settings(steps=STEPS, jitter=jitter, rf_crop=False, microbatch=1),
    )
    others = [channel + 1, channel + 2, channel + 3, channel + 4]
    batch = fv.render_units(
        model,
        blocks,
        layer,
        ref,
        [channel] + others,
        **schema_fv_settings(steps=STEPS, jitter=jitter, rf_crop=True, microbatch=5),
    )
    np.testing.assert_allclose(batch.curve[0], alone.curve[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(batch.images[0], alone.images[0], rtol=0, atol=1e-4)
