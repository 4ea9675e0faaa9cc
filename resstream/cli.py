"""The ``resstream`` command: the workflow's stages outside Snakemake, with the same code, seeds and
output formats as the jobs.

Each subcommand is registered with :func:`command` (its arguments) and runs as a function of the
parsed arguments.  Bad arguments and known problems (:class:`~resstream.base.errors.UserError`) end with
one line ``resstream: <problem>`` and exit status 2; a file the system refuses (a full disk, a
folder that vanished) also ends with one line naming it; a finished command exits 0.  Output cut
off by its reader (``resstream info ARCH | head``) ends quietly, as coreutils do, and Ctrl-C with
one line and status 130.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

from resstream.base.errors import UserError
from resstream.base.schema import section_defaults, section_properties

USAGE_ERROR = 2
MAX_CHANNEL = 65535  # far above any supported layer's width; a typo like 0-9999999999 must not fill the memory
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
PIPE_CLOSED = 141  # 128 + SIGPIPE, what coreutils' commands end with when their reader has gone


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line naming it (plus the usage hint), exit status 2."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


# name -> (help, add_arguments, run)
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int | None]]
] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Register ``run(args)`` as subcommand ``name`` with ``arguments(parser)`` adding its options."""

    def register(run):
        COMMANDS[name] = (help, arguments, run)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    from resstream import __version__

    parser = OneLineParser(prog="resstream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"resstream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (help_text, arguments, _run) in COMMANDS.items():
        arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UserError("resstream: name a command (see resstream --help)")
        status = int(COMMANDS[args.command][2](args) or 0)
        sys.stdout.flush()  # here, not at exit, so that a reader gone meanwhile is caught below
        return status
    except UserError as exc:
        return _fail(str(exc), USAGE_ERROR)
    except BrokenPipeError:
        # the reader (head, less) has gone: stop quietly; further writes (the flush at exit) go nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    except KeyboardInterrupt:
        return _fail("interrupted; no output was published", INTERRUPTED)
    except OSError as exc:
        if exc.filename is None:
            raise
        return _fail(
            f"{exc.filename}: {exc.strerror or exc}. Fix: check that path: a folder above it may be missing, "
            f"not writable or full",
            1,
        )


def _fail(message: str, status: int) -> int:
    print(message if message.startswith("resstream") else f"resstream: {message}", file=sys.stderr)
    return status


# -- families ----------------------------------------------------------------------------------------


@command(
    "families",
    "the supported residual CNN families (torchvision's and timm's): their archs and where each block's I, B and O are read",
    lambda p: None,
)
def families(args: argparse.Namespace) -> None:
    from resstream.model import timm_models
    from resstream.model.families import FAMILY_ARCHS, SEMANTICS

    for family, archs in FAMILY_ARCHS.items():
        print(f"{family}: {', '.join(archs)}")
        print(f"  {SEMANTICS[family]}")
    for family, modules in timm_models.FAMILY_MODULES.items():
        tested = ", ".join(f"timm:{name}" for name in timm_models.TESTED_MODELS[family])
        print(f"{family} (any model of timm.models.{'/'.join(modules)}; recorded and tested: {tested})")
        print(f"  {timm_models.SEMANTICS[family]}")
    print("timm residual models refused (their sum is no I + B of one stream):")
    for module, why in timm_models.REFUSED_MODULES.items():
        print(f"  models of timm.models.{module}, {why}")
    for block, why in timm_models.REFUSED_BLOCKS.items():
        print(f"  models with {block}s, {why}")


# -- info --------------------------------------------------------------------------------------------


def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "arch", help="a torchvision architecture, e.g. resnet18, or a timm model, e.g. timm:resnet50.a1_in1k"
    )
    p.add_argument("--size", type=_positive_int, default=224, help="input size in pixels (default 224)")


@command("info", "the blocks of an architecture: layers, channels and map sizes", _info_arguments)
def info(args: argparse.Namespace) -> None:
    from resstream.base.errors import ConfigError
    from resstream.model.structure import check_arch
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan

    check_arch(args.arch)
    try:
        study = StudyPlan(
            validate_config({"model": {"arch": args.arch}, "dataset": {"path": None}, "study": {"blocks": "default"}})
        )
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    from resstream.model import blocks as blk
    from resstream.model.structure import map_sizes

    try:
        sizes = map_sizes(args.arch, args.size)
    except RuntimeError as exc:  # torch: the input shrinks below a kernel somewhere in the network
        raise UserError(
            f"--size {args.size} is too small for {args.arch} ({str(exc).splitlines()[0][:160]}). Fix: give a "
            f"larger --size (the study uses 224)"
        ) from None
    print(f"{args.arch}: {len(study.blocks)} blocks; studied by default: {', '.join(study.study_blocks)}")
    width = max(6, *(len(info.name) for info in study.blocks))
    print(
        f"{'block':<{width}} {'class':<18} {'skip':<10} {'I':<24} {'B':<16} {'O (o_relu: pre)':<22} {'channels':>8} {'map':>7}"
    )
    for info in study.blocks:
        h, w = sizes[info.name]
        if info.has_sum:
            layers = {
                role: blk.layer_name(study.blocks, blk.role_tap(study.blocks, info.name, role, "pre"))
                for role in blk.ROLES
            }
        else:
            layers = {"I": "-", "B": "-", "O": "no residual sum"}
        print(
            f"{info.name:<{width}} {info.block_class:<18} {info.skip_path:<10} {layers['I']:<24} {layers['B']:<16} "
            f"{layers['O']:<22} {info.channels:>8} {h:>3}x{w:<3}"
        )


# -- shared options ----------------------------------------------------------------------------------


def _channel_list(text: str) -> list[int]:
    """``0-7``, ``5`` or ``0,3,8-11`` -> channel indices."""
    channels: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            lo, hi = int(first), int(last or first)
            if lo < 0 or hi < lo or hi > MAX_CHANNEL:
                raise ValueError
            channels.extend(range(lo, hi + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a channel list of channels 0..{MAX_CHANNEL}; write e.g. 0-7, 5 or 0,3,8-11"
        ) from None
    return sorted(set(channels))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 1")
    return value


def _thread_count(text: str) -> int:
    """At most the CPUs this process may use: far more threads than that only slow torch down, and
    a typo (999999) would crash the process while it starts them."""
    value = _positive_int(text)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if value > cpus:
        raise argparse.ArgumentTypeError(f"'{text}' is more threads than the {cpus} CPUs this command may use")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number > 0")
    return value


def _model_arguments(p: argparse.ArgumentParser) -> None:
    model = section_properties("model")
    p.add_argument(
        "--arch",
        default=model["arch"]["default"],
        metavar="ARCH",
        help="a torchvision residual CNN (default %(default)s; see: resstream families, resstream info ARCH)",
    )
    p.add_argument(
        "--weights",
        default=model["weights"]["default"],
        help="torchvision weights name, a checkpoint path, or random:SEED (default %(default)s)",
    )
    p.add_argument(
        "--checkpoint",
        choices=model["checkpoint"]["enum"],
        default=model["checkpoint"]["default"],
        help="what a --weights file may hold: torchvision's published file (default, sha256 checked) or any "
        "checkpoint of your own of --arch (recorded by its sha256), as model.checkpoint",
    )
    p.add_argument("--offline", action="store_true", help="never download weights (model.allow_download: false)")
    p.add_argument(
        "--device", choices=model["device"]["enum"], default=model["device"]["default"], help="default %(default)s"
    )
    p.add_argument("--threads", type=_thread_count, help="torch threads, at most the CPUs available (default: torch's)")


def _model_kwargs(args: argparse.Namespace) -> dict:
    return {
        "arch": args.arch,
        "weights": args.weights,
        "checkpoint": args.checkpoint,
        "allow_download": not args.offline,
        "device": args.device,
    }


def _start_work(args: argparse.Namespace) -> None:
    """Progress to stderr as the jobs log it; torch threads as asked."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


# -- fetch-sample ------------------------------------------------------------------------------------


def _fetch_sample_arguments(p: argparse.ArgumentParser) -> None:
    from resstream.data.sample import DEFAULT_DEST, ENV_VAR, SHARED_SAMPLE

    p.add_argument("--dest", default=str(DEFAULT_DEST), help=f"where the sample goes (default {DEFAULT_DEST})")
    p.add_argument(
        "--source",
        help=f"a folder (class folders or flat) or a zip of the upstream repository; default: "
        f"${ENV_VAR}, then {SHARED_SAMPLE.as_posix()}, then the download",
    )


@command(
    "fetch-sample",
    "put the demo's 1,000-image sample, verified against its sha256 manifest, in data/imagenet-sample",
    _fetch_sample_arguments,
)
def fetch_sample(args: argparse.Namespace) -> None:
    from resstream.data.sample import fetch_sample as fetch
    from resstream.data.sample import load_manifest

    dest = fetch(args.dest, args.source)
    print(f"{dest}: the {len(load_manifest())}-image sample, every file verified (sha256)")


# -- fv ----------------------------------------------------------------------------------------------


def _fv_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--layer",
        required=True,
        help="e.g. layer2.1.bn2, layer2.0.downsample.1, layer2.0.prerelu_out (see: resstream info)",
    )
    p.add_argument("--channels", required=True, type=_channel_list, help="e.g. 0-7, 5 or 0,3,8-11")
    p.add_argument("--out", required=True, help="folder for unit{c:04d}.png and fv.h5 (must not hold files)")
    fv = section_defaults("fv")
    p.add_argument("--steps", type=_positive_int, help=f"optimisation steps (default: the workflow's, {fv['steps']})")
    p.add_argument("--lr", type=_positive_number, help=f"Adam learning rate (default {fv['lr']})")
    p.add_argument(
        "--jitter",
        type=int,
        help="transform jitter in pixels (default: the layer's, docs/method.md#feature-visualizations)",
    )
    p.add_argument("--seed", type=int, help=f"base seed; each unit derives its own (default {fv['seed']})")
    p.add_argument("--hook", choices=section_properties("fv")["hook"]["enum"], help=f"default {fv['hook']}")
    p.add_argument(
        "--objective",
        choices=["center", "channel"],
        default="center",
        help="centre neuron (default) or the mean of the whole channel map",
    )
    p.add_argument(
        "--no-rf-crop",
        dest="rf_crop",
        action="store_false",
        default=None,
        help="compute the whole image, not only the centre neuron's receptive field (slower; the crop is exact)",
    )
    p.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast (changes results)")
    p.add_argument("--tf32", action="store_true", default=None, help="TF32 math on NVIDIA GPUs (changes results)")
    p.add_argument(
        "--microbatch",
        type=_positive_int,
        help="most units per forward (default: one per forward on CPU "
        "when cropped, else the whole batch; see fv.microbatch)",
    )
    _model_arguments(p)


@command("fv", "feature visualizations of channels of one layer, as the workflow's FV jobs make them", _fv_arguments)
def fv(args: argparse.Namespace) -> None:
    from resstream.api import render_fv

    _start_work(args)
    settings = {k: getattr(args, k) for k in ("steps", "lr", "seed", "hook", "rf_crop", "bf16", "tf32", "microbatch")}
    result = render_fv(
        args.layer,
        args.channels,
        args.out,
        objective=args.objective,
        jitter=args.jitter,
        **settings,
        **_model_kwargs(args),
    )
    print(
        f"{args.out}: {len(result.channels)} FVs of {args.layer} ({', '.join(f'{c}:{s}' for c, s in zip(result.channels, result.status))})"
    )


# -- activations -------------------------------------------------------------------------------------


def _activations_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="image folder: class sub-folders (ImageNet val) or flat")
    p.add_argument("--out", required=True, help="the HDF5 file to write (must not exist)")
    p.add_argument(
        "--blocks",
        default="default",
        type=lambda t: t if t == "default" else t.split(","),
        help="studied blocks, e.g. 1.1,2.0 (default: every block but 1.0); their I, B, O and inputs are tapped",
    )
    o_relu = section_properties("study")["o_relu"]
    p.add_argument(
        "--o-relu",
        choices=o_relu["enum"],
        default=o_relu["default"],
        help="O read before (pre: the paper) or after (post) the ReLU (default %(default)s)",
    )
    act = section_defaults("activations")
    p.add_argument("--batch-size", type=_positive_int, help=f"images per forward (default {act['batch_size']})")
    p.add_argument("--workers", type=int, help=f"JPEG-decoding processes (default {act['workers']})")
    p.add_argument("--topk", type=_positive_int, help=f"top images kept per unit (default {act['topk']})")
    bad_image = section_properties("dataset")["on_bad_image"]
    p.add_argument(
        "--on-bad-image",
        choices=bad_image["enum"],
        help=f"an unreadable image is skipped (NaN row) or fatal (default {bad_image['default']})",
    )
    _model_arguments(p)


@command(
    "activations",
    "the dataset pass: centre activations of every studied layer and each unit's top images",
    _activations_arguments,
)
def activations(args: argparse.Namespace) -> None:
    from resstream.api import extract_activations

    _start_work(args)
    out = extract_activations(
        args.data,
        args.out,
        blocks=args.blocks,
        o_relu=args.o_relu,
        on_bad_image=args.on_bad_image,
        batch_size=args.batch_size,
        workers=args.workers,
        topk=args.topk,
        **_model_kwargs(args),
    )
    print(out)


# -- prepare-imagenet-val ------------------------------------------------------------------------


def _prepare_imagenet_val_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the flat ILSVRC2012_val_*.JPEG files")
    p.add_argument(
        "--labels",
        required=True,
        metavar="FILE",
        help="LOC_val_solution.csv, or the devkit's ILSVRC2012_validation_ground_truth.txt (with --synsets), "
        "or the unpacked devkit folder ILSVRC2012_devkit_t12",
    )
    p.add_argument(
        "--synsets",
        metavar="FILE",
        help="the devkit's data/meta.mat: maps the ground truth's ILSVRC2012_IDs to synsets",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="new folder for the class folders (must not exist or be empty)"
    )
    p.add_argument("--copy", action="store_true", help="copy the images instead of linking them")


@command(
    "prepare-imagenet-val",
    "put ImageNet's flat validation images into class folders (links, or copies)",
    _prepare_imagenet_val_arguments,
)
def prepare_imagenet_val(args: argparse.Namespace) -> None:
    from resstream.data.imagenet_val import prepare_val_folder

    done = prepare_val_folder(args.images, args.labels, args.out, copy=args.copy, synsets=args.synsets)
    how = "copies" if done.copied else "links"
    extra = f"; {done.labelled_not_found} labelled images were not in --images" if done.labelled_not_found else ""
    print(
        f"resstream: {done.images} images in {done.classes} class folders under {done.out} ({how}){extra}. "
        f"Use it as dataset.path: snakemake --config 'dataset={{path: {done.out}}}'"
    )


if __name__ == "__main__":
    sys.exit(main())
