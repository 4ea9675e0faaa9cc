"""The block tensors computed outside resstream: a forward through each block's own submodules
(no hooks, no in-place ops), F.interpolate for the scale transforms, numpy for the PNGs, torchvision
for the dataset images.  The tap, activation and measurement tests compare resstream's numbers
with these: the one reference forward of the tests."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from resstream.data.dataset import IMAGENET_MEAN, IMAGENET_STD


def manual_block(block, x):
    """One BasicBlock or (v1.5) Bottleneck written out without any in-place op: its input X, the
    downsampled input D (None without a downsample), the branch B and the output O before and after
    the ReLU."""
    out = F.relu(block.bn1(block.conv1(x)))
    if hasattr(block, "conv3"):  # Bottleneck: 1x1, 3x3, 1x1
        b = block.bn3(block.conv3(F.relu(block.bn2(block.conv2(out)))))
    else:
        b = block.bn2(block.conv2(out))
    d = block.downsample(x) if block.downsample is not None else None
    o_pre = b + (d if d is not None else x)
    return {"X": x, "D": d, "B": b, "O_pre": o_pre, "O_post": F.relu(o_pre)}


def manual_maps(model, x, upto="2.1", grad=False):
    """Every block's tensors up to ``upto`` (None: all blocks), block by block through each block's
    own submodules: {block: {X, D, B, O_pre, O_post}}; with ``grad``, differentiable."""
    with torch.set_grad_enabled(grad):
        h = F.relu(model.bn1(model.conv1(x)))
        h = model.maxpool(h)
        out = {}
        for stage in range(1, 5):
            for i, block in enumerate(getattr(model, f"layer{stage}")):
                out[f"{stage}.{i}"] = manual_block(block, h)
                h = out[f"{stage}.{i}"]["O_post"]
                if f"{stage}.{i}" == upto:
                    return out
    return out


def assert_taps_match_manual_forward(model, x, block, x_in):
    """``block_taps`` of ``block`` (X, B, O_pre, O_post, and D where the block downsamples) from the
    model's input ``x`` equal :func:`manual_block` from the block's input ``x_in``; O_pre is exactly
    B + identity and O_post exactly relu(O_pre) and what the torchvision block returns; B really has
    negative values (else an aliasing bug would go unseen).  Returns the taps."""
    from resstream.model.blocks import O_POST, O_PRE, B, D, TapRef, X
    from resstream.model.taps import block_taps

    module = model.get_submodule(f"layer{block}")
    with torch.no_grad():
        ref = manual_block(module, x_in)
        kinds = [X, B, O_PRE, O_POST] + ([D] if ref["D"] is not None else [])
        taps = block_taps(model, x, [TapRef(block, k) for k in kinds])
    tap = {k: taps[TapRef(block, k)] for k in kinds}
    for kind, key in ((X, "X"), (B, "B"), (O_PRE, "O_pre"), (O_POST, "O_post"), (D, "D")):
        if kind in tap:
            torch.testing.assert_close(tap[kind], ref[key], atol=1e-6, rtol=0)
    identity = tap[D] if D in tap else tap[X]
    assert torch.equal(tap[O_PRE], tap[B] + identity)
    assert torch.equal(tap[O_POST], F.relu(tap[O_PRE]))
    with torch.no_grad():
        assert torch.equal(tap[O_POST], module(x_in.clone()))
    assert (tap[B] < 0).any()
    return taps


def manual_layers(model, x):
    """Every tapped tensor of every block by its layer name (``layer2.0.downsample.1``, the branch's
    last BN, ``.prerelu_out``, the block's output)."""
    out = {}
    for block, maps in manual_maps(model, x, upto=None).items():
        name = f"layer{block}"
        last_bn = "bn3" if hasattr(model.get_submodule(name), "bn3") else "bn2"
        if maps["D"] is not None:
            out[f"{name}.downsample.1"] = maps["D"]
        out[f"{name}.{last_bn}"] = maps["B"]
        out[f"{name}.prerelu_out"] = maps["O_pre"]
        out[name] = maps["O_post"]
    return out


def center(t):
    return t[:, :, t.shape[2] // 2, t.shape[3] // 2]


def manual_role(maps, block, role, o_relu="pre"):
    """[N, C] centre values of I, B or O of a block, per the paper's definitions (docs/method.md#taps-i-b-and-o)."""
    o = "O_pre" if o_relu == "pre" else "O_post"
    if role == "B":
        return center(maps[block]["B"])
    if role == "O":
        return center(maps[block][o])
    if maps[block]["D"] is not None:
        return center(maps[block]["D"])
    stage, i = map(int, block.split("."))
    return center(maps[f"{stage}.{i - 1}"][o])


def manual_png(path):
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    t = torch.from_numpy(arr).permute(2, 0, 1)
    return (t - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def manual_fv_input(study, layer, channel):
    """The FV picture of ``channel`` in ``layer``, read from its chunk's PNG: ``[1, 3, 224, 224]``."""
    from resstream.base.paths import fv_png

    chunk = next(ch for ch in study.chunks(layer) if channel in ch.channels)
    return manual_png(fv_png(study.config["results"], layer, chunk.name, channel))[None]


def manual_scale_up(x):
    return F.interpolate(x[..., 56:168, 56:168], size=(224, 224), mode="bilinear", align_corners=False)


def manual_scale_down(x):
    return F.pad(
        F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False), (56, 56, 56, 56), mode="reflect"
    )


def manual_image(path):
    """A dataset image as the paper reads it (docs/method.md#imagenet-variant-a3): PIL Resize(256), CenterCrop(224), ToTensor, Normalize."""
    with Image.open(path) as img:
        x = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])(
            img.convert("RGB")
        )
    return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def manual_topk(values, k=9):
    """Row indices of the k largest values of a ``[N]`` column (NaN never chosen), value descending
    and, among equal values, the higher row first (the author's ``torch.sort(descending=True)``)."""
    rows = [i for i in range(len(values)) if np.isfinite(values[i])]
    return sorted(rows, key=lambda i: (-values[i], -i))[:k]
