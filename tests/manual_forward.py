"""The block tensors computed outside resstream: a forward through each block's own submodules
(no hooks, no in-place ops), F.interpolate for the scale transforms, numpy for the PNGs, torchvision
for the dataset images.  The measurement tests compare resstream's numbers with these."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from resstream.data.dataset import IMAGENET_MEAN, IMAGENET_STD


def manual_maps(model, x, upto="2.1"):
    """Every block's tensors up to ``upto``, module by module: {block: {X, D, B, O_pre, O_post}}."""
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        out = {}
        for stage in range(1, 5):
            for i, block in enumerate(getattr(model, f"layer{stage}")):
                b = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(h)))))
                d = block.downsample(h) if block.downsample is not None else None
                o_pre = b + (d if d is not None else h)
                out[f"{stage}.{i}"] = {"X": h, "D": d, "B": b, "O_pre": o_pre, "O_post": F.relu(o_pre)}
                h = F.relu(o_pre)
                if f"{stage}.{i}" == upto:
                    return out
    return out


def center(t):
    return t[:, :, t.shape[2] // 2, t.shape[3] // 2]


def manual_role(maps, block, role, o_relu="pre"):
    """[N, C] centre values of I, B or O of a block, per the paper's definitions (spec §1)."""
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


def manual_scale_up(x):
    return F.interpolate(x[..., 56:168, 56:168], size=(224, 224), mode="bilinear", align_corners=False)


def manual_scale_down(x):
    return F.pad(F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False), (56, 56, 56, 56), mode="reflect")


def manual_image(path):
    """A dataset image as the paper reads it (spec §8): PIL Resize(256), CenterCrop(224), ToTensor, Normalize."""
    with Image.open(path) as img:
        x = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])(img.convert("RGB"))
    return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def manual_topk(values, k=9):
    """Row indices of the k largest values of a ``[N]`` column (NaN never chosen), value descending
    and, among equal values, the higher row first (the author's ``torch.sort(descending=True)``)."""
    rows = [i for i in range(len(values)) if np.isfinite(values[i])]
    return sorted(rows, key=lambda i: (-values[i], -i))[:k]
