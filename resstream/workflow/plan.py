"""The study plan (:class:`StudyPlan`): what every stage lays its jobs out from (blocks, FV layers,
channels per layer, channel chunks and per-layer FV settings), derived from a validated config and
the model's structure alone (:mod:`resstream.model.structure`), so a dry run is fast.  Each stage's
``jobs`` module (``resstream/<stage>/jobs.py``) builds its rules' job specs from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from resstream.base.errors import ConfigError
from resstream.base.schema import section_defaults
from resstream.fv.settings import FVSettings
from resstream.model import blocks as blk
from resstream.model.families import arch_family
from resstream.model.structure import map_sizes, structure

JITTER_BY_INPUT_STRIDE = {1: 0, 2: 0, 4: 0, 8: 4}  # deeper (stride 16, 32): 16


def default_jitter(block: blk.BlockInfo) -> int:
    """docs/method.md#feature-visualizations (the author's batch_process.sh): 0 up to layer2.0, 4 up to layer3.0, 16 deeper.

    Generalised by the total stride of the block's input, for every family: 0 while the input is
    at stride 4 or less, 4 at stride 8, 16 from stride 16 on.  In a ResNet a stage's first block
    (the downsample) reads the previous stage's map, so it keeps the previous stage's jitter and the
    per-stage values are 0, 4, 16, 16 for stages 1-4: for resnet18 exactly the author's table, and
    the same per-stage rule for any number of blocks per stage.  In ConvNeXt, RegNet, MobileNet and
    EfficientNet the stages at stride 2, 4, 8, 16, 32 get 0, 0, 4, 16, 16 the same way.
    """
    return JITTER_BY_INPUT_STRIDE.get(block.in_stride, 16)


@dataclass(frozen=True)
class Chunk:
    layer: str
    start: int  # first channel index of the range (inclusive)
    stop: int  # end of the range (exclusive)
    channels: tuple[int, ...]  # selected channels inside the range

    @property
    def name(self) -> str:
        return f"c{self.start:04d}-{self.stop - 1:04d}"


class StudyPlan:
    """The resolved plan of one configuration."""

    def __init__(self, config: dict):
        self.config = config
        self.arch = config["model"]["arch"]
        self.blocks = list(structure(self.arch))
        self.o_relu = config["study"]["o_relu"]
        self.family = arch_family(self.arch)
        sel = config["study"]["blocks"]
        names = [b.name for b in self.blocks]
        self.study_blocks = blk.default_study_blocks(self.blocks) if sel == "default" else list(sel)
        for name in self.study_blocks:
            if name not in names:
                raise ConfigError(f"study.blocks: unknown block '{name}'; {self.arch} has blocks {', '.join(names)}")
            if not self.block_info(name).has_sum:
                summed = ", ".join(b.name for b in self.blocks if b.has_sum)
                raise ConfigError(
                    f"study.blocks: block '{name}' of {self.arch} has no residual sum, so no I, B and O to "
                    f"study; blocks with a sum: {summed}"
                )
        for name in config["study"]["channels_by_block"]:
            if name not in self.study_blocks:
                raise ConfigError(
                    f"study.channels_by_block: block '{name}' is not among study.blocks ({', '.join(self.study_blocks)})"
                )
        order = {n: i for i, n in enumerate(names)}
        self.study_blocks.sort(key=order.__getitem__)
        self._check_o_relu()
        self.layers = blk.study_layers(self.blocks, self.study_blocks, self.o_relu)
        self._check_overrides()

    def _check_o_relu(self):
        """``o_relu: post`` reads O after the nonlinearity that follows the sum: refused where the
        studied blocks have none (ConvNeXt, MobileNet, EfficientNet: O is the sum itself)."""
        bare = [b for b in self.study_blocks if self.block_info(b).after_sum is None]
        if self.o_relu == "post" and bare:
            raise ConfigError(
                f"study.o_relu: post asks for O after the nonlinearity that follows the residual sum, but "
                f"{self.arch} ({self.family}) has none after the sum of its blocks ({bare[0]}, ...): O is "
                f"the sum itself. Fix: set study.o_relu: pre"
            )

    # -- channels -------------------------------------------------------------------------------
    def block_info(self, name: str) -> blk.BlockInfo:
        return blk.block_lookup(self.blocks, name)

    def block_channels(self, block: str) -> list[int]:
        info = self.block_info(block)
        spec = self.config["study"]["channels_by_block"].get(block, self.config["study"]["channels"])
        key = (
            f"study.channels_by_block.{block}"
            if block in self.config["study"]["channels_by_block"]
            else "study.channels"
        )
        if spec == "all":
            return list(range(info.channels))
        if isinstance(spec, int):
            if spec > info.channels:
                raise ConfigError(f"{key}: asks for the first {spec} channels but block {block} has {info.channels}")
            return list(range(spec))
        bad = [c for c in spec if c >= info.channels]
        if bad:
            raise ConfigError(
                f"{key}: channel(s) {bad} out of range for block {block}, which has channels 0..{info.channels - 1}"
            )
        return sorted(spec)

    def tap_channels(self, ref: blk.TapRef) -> int:
        """Channels of a tap's tensor: the block's input channels for X, else its output channels."""
        info = self.block_info(ref.block)
        return info.in_channels if ref.tensor == blk.X else info.channels

    def layer_channels(self, layer: str, roles=blk.ROLES) -> list[int]:
        """Channels of a layer the study needs, over the (block, role) pairs it serves whose role
        is in ``roles``."""
        chans: set[int] = set()
        for block, role in self.layers[layer]:
            if role in roles:
                chans.update(self.block_channels(block))
        return sorted(chans)

    def chunks(self, layer: str, roles=blk.ROLES) -> list[Chunk]:
        per_job = self.config["fv"]["channels_per_job"]
        chans = self.layer_channels(layer, roles)
        by_range: dict[int, list[int]] = {}
        for c in chans:
            by_range.setdefault(c // per_job, []).append(c)
        n = self.layer_ref(layer)
        total = self.tap_channels(n)
        return [
            Chunk(layer, k * per_job, min((k + 1) * per_job, total), tuple(cs)) for k, cs in sorted(by_range.items())
        ]

    def chunk(self, layer: str, name: str, roles=blk.ROLES) -> Chunk:
        for c in self.chunks(layer, roles):
            if c.name == name:
                return c
        raise ConfigError(f"layer {layer} has no channel chunk {name}")

    # -- unit atlas -------------------------------------------------------------------------------
    @property
    def atlas_enabled(self) -> bool:
        return bool(self.config["atlas"]["enabled"])

    @property
    def channel_fv_roles(self) -> tuple[str, ...]:
        """Roles (I, B, O) whose units get a channel-objective FV for the atlas."""
        return tuple(self.config["atlas"]["channel_fvs"]) if self.atlas_enabled else ()

    def channel_fv_layers(self) -> list[str]:
        return [layer for layer, uses in self.layers.items() if any(r in self.channel_fv_roles for _, r in uses)]

    def channel_fv_chunks(self, layer: str) -> list[Chunk]:
        return self.chunks(layer, self.channel_fv_roles)

    def block_fv_layers(self, block: str) -> list[str]:
        """The FV layers serving a studied block (its I, B and O, in the order of ``layers``)."""
        return [name for name, uses in self.layers.items() if any(b == block for b, _ in uses)]

    def block_layers(self, block: str) -> dict[str, str]:
        """``{role: layer}`` of a studied block."""
        return {
            role: blk.layer_name(self.blocks, blk.role_tap(self.blocks, block, role, self.o_relu)) for role in blk.ROLES
        }

    # -- layers and settings ----------------------------------------------------------------------
    def layer_ref(self, layer: str) -> blk.TapRef:
        return blk.parse_layer(self.blocks, layer)

    def layer_block(self, layer: str) -> blk.BlockInfo:
        return self.block_info(self.layer_ref(layer).block)

    def _check_overrides(self):
        for key in self.config["fv"]["overrides"]:
            if key in self.layers or key in self.study_blocks:
                continue
            raise ConfigError(
                f"fv.overrides: '{key}' is neither a studied block ({', '.join(self.study_blocks)}) nor an FV layer "
                f"({', '.join(self.layers)})"
            )

    def fv_settings(self, layer: str, objective: str = "center") -> FVSettings:
        """The FV settings of a layer (``fv`` with its block's and its own ``fv.overrides``).  A
        channel objective (whole map) is never cropped to a receptive field: its ``rf_crop`` is
        False whatever ``fv.rf_crop`` says, so that setting never reruns channel FVs."""
        fv = self.config["fv"]
        info = self.layer_block(layer)
        values = {"steps": fv["steps"], "lr": fv["lr"], "jitter": default_jitter(info)}
        # A block override applies to the layers the block owns (its D, B and O), a layer override
        # to that layer alone and wins.
        values.update(fv["overrides"].get(info.name, {}))
        values.update(fv["overrides"].get(layer, {}))
        return FVSettings(
            steps=int(values["steps"]),
            lr=float(values["lr"]),
            jitter=int(values["jitter"]),
            hook=fv["hook"],
            seed=fv["seed"],
            rf_crop=fv["rf_crop"] and objective == "center",
            bf16=fv["bf16"],
            microbatch=fv["microbatch"],
            channels_last=fv["channels_last"],
            tf32=fv["tf32"],
        )

    def activation_layers(self) -> list[str]:
        """Layers the dataset pass taps: every FV layer, plus the post-ReLU outputs of the studied
        blocks and of their predecessors (the Fig 4 input curves, docs/method.md#inhibition-fig-4), in forward order."""
        names = set(self.layers)
        for block in self.study_blocks:
            names.add(blk.layer_name(self.blocks, blk.TapRef(block, blk.O_POST)))
            prev = self.block_info(block).prev
            if prev is not None:
                names.add(blk.layer_name(self.blocks, blk.TapRef(prev, blk.O_POST)))
        return sorted(names, key=lambda name: blk.forward_order(self.blocks, self.layer_ref(name)))

    def spatial_layers(self) -> list[str]:
        """``activations.spatial_layers``, checked against the tapped layers, in forward order."""
        names = list(self.config["activations"]["spatial_layers"])
        tapped = self.activation_layers()
        bad = [n for n in names if n not in tapped]
        if bad:
            raise ConfigError(
                f"activations.spatial_layers: {', '.join(bad)} not among the tapped layers of this study "
                f"({', '.join(tapped)})"
            )
        return [n for n in tapped if n in names]

    def spatial_bytes_per_image(self) -> int:
        """Bytes of the full maps one image adds to the activations file (``spatial_layers``), each
        layer taken at its block's output size and channels (an upper bound): the pass's memory budget."""
        from resstream.activations.store import map_bytes

        sizes = map_sizes(self.arch)
        return sum(
            map_bytes(self.layer_block(n).channels, *sizes[self.layer_ref(n).block]) for n in self.spatial_layers()
        )

    def exemplar_units(self) -> dict[str, list[int]]:
        """The units that get exemplar grids: per FV layer the study's channels of it; per extra
        post-ReLU layer (Fig 4 input curves, A.3) the channels of the studied blocks that read it
        (its own block, and the next block whose input it is), within the layer's channel count."""
        units: dict[str, list[int]] = {}
        for layer in self.activation_layers():
            if layer in self.layers:
                chans = self.layer_channels(layer)
            else:
                ref = self.layer_ref(layer)
                n_channels = self.tap_channels(ref)
                readers = [b for b in self.study_blocks if b == ref.block or self.block_info(b).prev == ref.block]
                chans = sorted({c for b in readers for c in self.block_channels(b) if c < n_channels})
            if chans:
                units[layer] = chans
        return units

    def layer_table(self) -> list[dict]:
        """The layer table (docs/method.md#taps-i-b-and-o) for this model and study: one row per (block, role)."""
        sizes = map_sizes(self.arch)
        rows = []
        for block in self.study_blocks:
            info = self.block_info(block)
            h, w = sizes[block]
            for role in blk.ROLES:
                ref = blk.role_tap(self.blocks, block, role, self.o_relu)
                rows.append(
                    {
                        "block": block,
                        "block_type": info.skip_path,
                        "role": role,
                        "layer": blk.layer_name(self.blocks, ref),
                        "tap": f"{ref.block}:{ref.tensor}",
                        "channels": info.channels,
                        "map_size": h,
                        "center": h // 2,
                        "selected_channels": len(self.block_channels(block)),
                    }
                )
        return rows


def schema_fv_settings(**given) -> dict:
    """The settings :func:`resstream.fv.render.render_units` takes, for a call outside a study
    (tests, benchmarks): the schema's ``fv`` defaults, with ``given`` ones (``steps``, ``jitter``,
    ...) in their place; ``jitter`` has no schema default (it is per layer: :func:`default_jitter`)."""
    fv = section_defaults("fv")
    return {**{name: fv[name] for name in FVSettings.__dataclass_fields__ if name in fv}, **given}
