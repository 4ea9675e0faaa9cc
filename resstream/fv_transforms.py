"""Lucent's FV transforms (spec §2) for the units of a chunk, each unit with its own random draws.

Each unit draws its random values (shifts, scale, angle) from its own numpy RandomState, in the
order lucent's transform list draws them, so a unit's draws never depend on its chunk.  Two ways
to apply them, same draws:

* per unit (:func:`per_unit_inputs`): lucent's own transform functions on each unit's image, the
  unit's RandomState swapped in around the call.  The CPU default: tests/test_lucent_equivalence.py
  proves it equal to lucent's ``render_vis``.
* batched (:class:`BatchedTransforms`): the same operations (reflect pad, kornia's affine warps
  through ``affine_grid`` + ``grid_sample``, bilinear upsampling) applied to the whole chunk at
  once, units grouped by their drawn scale.  Lucent's calls cost ~120-280 small tensor ops per
  unit and step, and three blocking host-to-device copies (its warp matrices are made on the host);
  on a GPU that launch overhead, not the FLOPs, would set the pace.  Here the small warp matrices
  are computed on the host with kornia's own functions and sent without waiting
  (``non_blocking``); the GPU default.  On CPU it equals the per-unit way to float tolerance
  (tests/test_fv_gpu_path.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # kornia 0.4.1 (lucent's pin) warns about torch APIs at import
    import kornia
    from kornia.geometry.transform.affwarp import _compute_translation_matrix
    from lucent.optvis import transform as lucent_transform

IMAGE_SIZE = 224
SCALES = (1, 0.975, 1.025, 0.95, 1.05)
ANGLES = tuple(range(-5, 6))


@dataclass
class InputGroup:
    """Transformed, normalised inputs of the units ``members`` (chunk indices), all of one size."""

    members: list[int]
    x: torch.Tensor  # [len(members), 3, size, size]

    @property
    def size(self) -> int:
        return self.x.shape[-1]


def lucent_transforms(jitter: int) -> list:
    """Spec §2: j < 4 → scale + rotate, no crop (sizes 224-236); j ≥ 4 → pad(j, reflect), jitter(j),
    scale, rotate, jitter(j//2), centre crop 224."""
    scale = lucent_transform.random_scale(list(SCALES))
    rotate = lucent_transform.random_rotate(list(ANGLES))
    if jitter < 4:
        return [scale, rotate]
    steps = [lucent_transform.pad(jitter, mode="reflect"), lucent_transform.jitter(jitter), scale, rotate]
    if jitter // 2 > 1:
        steps.append(lucent_transform.jitter(jitter // 2))
    steps.append(center_crop(IMAGE_SIZE))
    return steps


def center_crop(size: int):
    # Same arithmetic as torchvision's CenterCrop (the author's HEAD), for square tensors.
    def inner(t):
        h, w = t.shape[-2:]
        top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
        return t[..., top : top + size, left : left + size]

    return inner


class UnitRandom:
    """Each unit's own numpy RandomState, swapped in around lucent's transform calls (they draw
    from numpy's global generator)."""

    def __init__(self, seeds):
        self.states = [np.random.RandomState(s ^ 0x5EED).get_state() for s in seeds]

    def apply(self, i, fn, *args):
        outer = np.random.get_state()
        np.random.set_state(self.states[i])
        try:
            return fn(*args)
        finally:
            self.states[i] = np.random.get_state()
            np.random.set_state(outer)


def group_by_size(inputs: list[torch.Tensor]) -> list[InputGroup]:
    """Per-unit inputs as one group per input size, sizes in order of first appearance."""
    by_size: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        by_size.setdefault(x.shape[-1], []).append(i)
    return [InputGroup(members, torch.cat([inputs[i] for i in members])) for members in by_size.values()]


def per_unit_inputs(images, jitter_transforms, rng: UnitRandom, mean, std) -> list[InputGroup]:
    """Lucent's transform calls on each unit's image with its own draws, then ImageNet normalisation."""
    # split, not images[i:i+1]: each slice's backward would build a full-batch gradient (O(k²)).
    inputs = [(rng.apply(i, jitter_transforms, image) - mean) / std for i, image in enumerate(torch.split(images, 1))]
    return group_by_size(inputs)


def _draw(jitter: int) -> dict:
    """One unit's draws for one step, from numpy's global generator, in lucent's order."""
    d = {}
    if jitter >= 4:
        d["shift"] = (np.random.choice(jitter), np.random.choice(jitter))
    d["scale"] = np.random.choice(list(SCALES))
    d["angle"] = np.random.choice(list(ANGLES))
    if jitter >= 4 and jitter // 2 > 1:
        d["shift2"] = (np.random.choice(jitter // 2), np.random.choice(jitter // 2))
    return d


def warp_theta(matrix: torch.Tensor, size: int) -> torch.Tensor:
    """kornia 0.4.1 ``warp_affine``'s sampling matrix for [B, 2, 3] pixel matrices on a square image
    of ``size`` (output size = input size), computed where ``matrix`` lives."""
    m3 = kornia.convert_affinematrix_to_homography(matrix)
    dst_norm_trans_src_norm = kornia.normalize_homography(m3, (size, size), (size, size))
    return torch.inverse(dst_norm_trans_src_norm)[:, :2, :]


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """kornia's ``warp_affine`` (bilinear, zeros, align_corners False) with a host-made ``theta``."""
    theta = theta.to(x.device, non_blocking=True)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, mode="bilinear", padding_mode="zeros")


def translate(x: torch.Tensor, shifts) -> torch.Tensor:
    """lucent's ``jitter``: kornia ``translate`` by each unit's integer (dx, dy)."""
    matrix = _compute_translation_matrix(torch.tensor(np.asarray(shifts, dtype=np.float64)).float())
    return warp(x, warp_theta(matrix[:, :2, :3], x.shape[-1]))


def rotate(x: torch.Tensor, angles) -> torch.Tensor:
    """lucent's ``random_rotate``: kornia's rotation about the image centre, each unit its angle."""
    b, size = x.shape[0], x.shape[-1]
    center = torch.ones(b, 2)
    center[..., 0] = (size - 1) / 2
    center[..., 1] = (size - 1) / 2
    angle = torch.ones(b) * torch.tensor(np.asarray(angles, dtype=np.float64)).float()
    matrix = kornia.get_rotation_matrix2d(center, angle, torch.ones(b, 2))
    return warp(x.float(), warp_theta(matrix, size))


def rescale(x: torch.Tensor, scale) -> torch.Tensor:
    """lucent's ``random_scale`` with one drawn scale for every unit of ``x``."""
    shp = x.shape[2:]
    scale_shape = [lucent_transform._roundup(scale * d) for d in shp]
    pad_x = max(0, lucent_transform._roundup((shp[1] - scale_shape[1]) / 2))
    pad_y = max(0, lucent_transform._roundup((shp[0] - scale_shape[0]) / 2))
    up = F.interpolate(x, size=[int(s) for s in scale_shape], mode="bilinear", align_corners=True)
    return F.pad(up, [int(pad_y), int(pad_x)] * 2)


def index_on(device, members: list[int]) -> torch.Tensor:
    """Chunk indices as a tensor on ``device``, sent without making the host wait for the device."""
    return torch.tensor(members).to(device, non_blocking=True)


class BatchedTransforms:
    """Lucent's transform list for a whole chunk: the same per-unit draws as :func:`per_unit_inputs`,
    applied as a few batched operations per step (one group per drawn scale)."""

    def __init__(self, jitter: int, rng: UnitRandom):
        self.jitter, self.rng = jitter, rng
        self.crop = center_crop(IMAGE_SIZE)

    def __call__(self, images, mean, std) -> list[InputGroup]:
        k = images.shape[0]
        draws = [self.rng.apply(i, _draw, self.jitter) for i in range(k)]
        x = images
        if self.jitter >= 4:
            x = F.pad(x, [self.jitter] * 4, mode="reflect")
            x = translate(x, [d["shift"] for d in draws])
        groups: dict[int, InputGroup] = {}
        for scale in SCALES:
            members = [i for i in range(k) if draws[i]["scale"] == scale]
            if not members:
                continue
            xs = x if len(members) == k else x.index_select(0, index_on(x.device, members))
            xs = rotate(rescale(xs, draws[members[0]]["scale"]), [draws[i]["angle"] for i in members])
            if "shift2" in draws[0]:
                xs = translate(xs, [draws[i]["shift2"] for i in members])
            if self.jitter >= 4:
                xs = self.crop(xs)
            _merge(groups, InputGroup(members, (xs - mean) / std))
        return list(groups.values())


def _merge(groups: dict[int, InputGroup], group: InputGroup) -> None:
    """Groups of equal input size become one (one forward for them)."""
    same = groups.get(group.size)
    if same is None:
        groups[group.size] = group
    else:
        groups[group.size] = InputGroup(same.members + group.members, torch.cat([same.x, group.x]))
