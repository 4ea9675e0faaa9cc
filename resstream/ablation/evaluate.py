"""Top-1 accuracy and logit KL of lesioned networks, with the shared work done once.

The author ran one full pass over ImageNet per condition (decoding every image each time).  Here
each image is decoded once and every scale's view made from it; per batch and scale the plain
network runs once (its logits, and every lesioned block's input, kept); then for each condition
only the lesioned block and the network after it run.  Accuracy counts only readable images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from resstream.ablation.lesion import Lesion, check_lesion, held_output, lesioned
from resstream.ablation.scales import Scale, scale_transform
from resstream.base.errors import UserError
from resstream.data.image_folder import DatasetError, ImageRecord, load_rgb
from resstream.model.blocks import BlockInfo, block_lookup

log = logging.getLogger(__name__)
PLAIN = "none"  # the set name of the unlesioned network's rows


@dataclass(frozen=True)
class Condition:
    """One lesioned network, named as its ``ablation.csv`` rows name it."""

    set: str  # "pass_all", "skip", "list", "random:pass_all", ...
    kind: str  # "mean" | "zero"
    trial: int  # -1: the target set itself; 0, 1, ...: a random control trial
    lesion: Lesion


class ScaledImages(torch.utils.data.Dataset):
    """Items are ``(views [S, 3, 224, 224], class id, ok)``: each image decoded once for all scales."""

    def __init__(self, root, records: list[ImageRecord], scales: list[Scale]):
        unlabelled = [r.path for r in records if r.class_id < 0]
        if unlabelled:
            raise DatasetError(
                f"ablation.dataset {root} has images outside class folders ({unlabelled[0]}, ...); "
                "accuracy needs labels. Fix: use an ImageNet-val folder made by prepare-imagenet-val"
            )
        self.root, self.records = root, records
        self.transforms = [scale_transform(s) for s in scales]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        rec = self.records[i]
        try:
            img = load_rgb(f"{self.root}/{rec.path}")
        except DatasetError as exc:
            log.warning("skipping unreadable image %s/%s (%s)", self.root, rec.path, exc)
            return torch.zeros(len(self.transforms), 3, 224, 224), rec.class_id, False
        return torch.stack([t(img) for t in self.transforms]), rec.class_id, True


def forward_from(
    model: torch.nn.Module, blocks: list[BlockInfo], info: BlockInfo, x: torch.Tensor, after: bool = False
) -> torch.Tensor:
    """A ResNet's logits from block ``info``'s input ``x`` (that block, every later one, pool, fc),
    or with ``after`` from its output ``x`` (the later blocks, pool, fc)."""
    for later in blocks[info.index + after :]:
        x = model.get_submodule(later.module)(x)
    return model.fc(torch.flatten(model.avgpool(x), 1))


def plain_pass(model, blocks: list[BlockInfo], names: list[str], x: torch.Tensor):
    """The unlesioned logits and the input and output of each block in ``names``, in one forward."""
    inputs, outputs, handles = {}, {}, []
    for name in names:
        module = model.get_submodule(block_lookup(blocks, name).module)
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: inputs.update({n: a[0].clone()})))
        handles.append(module.register_forward_hook(lambda m, a, out, n=name: outputs.update({n: out.clone()})))
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, inputs, outputs


def lesioned_logits(model, blocks: list[BlockInfo], info: BlockInfo, lesion: Lesion, block_in, block_out):
    """Logits of the lesioned network from the plain pass's tensors: an O lesion starts after the
    block (its output with the channels held), a path lesion reruns the block with its hooks."""
    if lesion.path == "O" and lesion.channels:
        check_lesion(info, lesion)
        return forward_from(model, blocks, info, held_output(block_out, lesion), after=True)
    with lesioned(model, info, lesion):
        return forward_from(model, blocks, info, block_in)


class Tally:
    """Correct answers, images and summed KL per (condition, scale)."""

    def __init__(self):
        self.counts: dict = {}

    def add(self, key, logits, plain_log_p, labels, ok):
        log_p = F.log_softmax(logits.double(), dim=1)
        kl = (plain_log_p.exp() * (plain_log_p - log_p)).sum(dim=1)
        c = self.counts.setdefault(key, [0, 0, 0.0])
        c[0] += int(((logits.argmax(dim=1) == labels) & ok).sum())
        c[1] += int(ok.sum())
        c[2] += float(kl[ok].sum())

    def rows(self):
        for (block, cond, scale), (correct, n, kl) in self.counts.items():
            if n == 0:
                raise UserError(
                    "ablation found no readable image in the dataset; Fix: point ablation.dataset at a folder of readable images"
                )
            yield {
                "block": block,
                "set": cond.set if cond else PLAIN,
                "kind": cond.kind if cond else "",
                "path": cond.lesion.path if cond else "",
                "trial": cond.trial if cond else -1,
                "scale": scale.factor,
                "fill": scale.fill if scale.fill is not None else "",
                "accuracy": 100.0 * correct / n,
                "kl": kl / n,
                "n": n,
            }


def evaluate_lesions(
    model, blocks: list[BlockInfo], conditions: dict[str, list[Condition]], batches, scales: list[Scale], device
) -> list[dict]:
    """Rows of ``ablation.csv`` for every condition (grouped by block) at every scale, plus the
    unlesioned network's rows (set ``none``).  ``batches`` yields ``(views, labels, ok)``."""
    tally = Tally()
    names = list(conditions)
    with torch.inference_mode():
        for views, labels, ok in batches:
            labels, ok = labels.to(device), ok.to(device)
            for si, scale in enumerate(scales):
                logits, inputs, outputs = plain_pass(model, blocks, names, views[:, si].to(device))
                plain_log_p = F.log_softmax(logits.double(), dim=1)
                tally.add(("", None, scale), logits, plain_log_p, labels, ok)
                for name, conds in conditions.items():
                    info = block_lookup(blocks, name)
                    for cond in conds:
                        out = lesioned_logits(model, blocks, info, cond.lesion, inputs[name], outputs[name])
                        tally.add((name, cond, scale), out, plain_log_p, labels, ok)
    return list(tally.rows())


def image_batches(root, records, scales, batch_size: int, workers: int):
    """``(views, labels, ok)`` batches of an image folder, each image decoded once."""
    return torch.utils.data.DataLoader(
        ScaledImages(root, records, scales), batch_size=batch_size, num_workers=workers, shuffle=False
    )
