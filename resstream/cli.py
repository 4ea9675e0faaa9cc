"""The ``resstream`` command: the workflow's stages outside Snakemake, with the same code, seeds and
output formats as the jobs.

Each subcommand is registered with :func:`command` (its arguments) and runs as a function of the
parsed arguments.  Bad arguments and known problems (:class:`~resstream.errors.UserError`) end with
one line ``resstream: <problem>`` and exit status 2; a finished command exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .errors import UserError

USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line naming it (plus the usage hint), exit status 2."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


# name -> (help, add_arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int | None]]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Register ``run(args)`` as subcommand ``name`` with ``arguments(parser)`` adding its options."""

    def register(run):
        COMMANDS[name] = (help, arguments, run)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

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
        return int(COMMANDS[args.command][2](args) or 0)
    except UserError as exc:
        message = str(exc)
        print(message if message.startswith("resstream") else f"resstream: {message}", file=sys.stderr)
        return USAGE_ERROR


# -- info --------------------------------------------------------------------------------------------


def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", help="a torchvision architecture, e.g. resnet18")
    p.add_argument("--size", type=int, default=224, help="input size in pixels (default 224)")


@command("info", "the blocks of an architecture: layers, channels and map sizes", _info_arguments)
def info(args: argparse.Namespace) -> None:
    from .config import ConfigError, Study, load_schema, validate_config

    archs = load_schema()["properties"]["model"]["properties"]["arch"]["enum"]
    if args.arch not in archs:
        raise UserError(f"unknown architecture '{args.arch}'; supported: {', '.join(archs)}")
    try:
        study = Study(validate_config({"model": {"arch": args.arch}, "dataset": {"path": None}, "study": {"blocks": "default"}}))
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    from . import blocks as blk
    from .config import map_sizes

    sizes = map_sizes(args.arch, args.size)
    print(f"{args.arch}: {len(study.blocks)} blocks; studied by default: {', '.join(study.study_blocks)}")
    print(f"{'block':<6} {'type':<10} {'kind':<10} {'I':<24} {'B':<16} {'O (pre-ReLU)':<22} {'channels':>8} {'map':>7}")
    for info in study.blocks:
        h, w = sizes[info.name]
        layers = {role: blk.layer_name(study.blocks, blk.role_tap(study.blocks, info.name, role, "pre")) for role in blk.ROLES}
        print(f"{info.name:<6} {info.block_type:<10} {info.kind:<10} {layers['I']:<24} {layers['B']:<16} {layers['O']:<22} "
              f"{info.channels:>8} {h:>3}x{w:<3}")


# -- prepare-imagenet-val ------------------------------------------------------------------------


def _prepare_imagenet_val_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the flat ILSVRC2012_val_*.JPEG files")
    p.add_argument("--labels", required=True, metavar="FILE",
                   help="LOC_val_solution.csv, or the devkit's ILSVRC2012_validation_ground_truth.txt (with --synsets), "
                        "or the unpacked devkit folder ILSVRC2012_devkit_t12")
    p.add_argument("--synsets", metavar="FILE", help="the devkit's data/meta.mat: maps the ground truth's ILSVRC2012_IDs to synsets")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder for the class folders (must not exist or be empty)")
    p.add_argument("--copy", action="store_true", help="copy the images instead of linking them")


@command("prepare-imagenet-val", "put ImageNet's flat validation images into class folders (links, or copies)",
         _prepare_imagenet_val_arguments)
def prepare_imagenet_val(args: argparse.Namespace) -> None:
    from .imagenet_val import prepare_val_folder

    done = prepare_val_folder(args.images, args.labels, args.out, copy=args.copy, synsets=args.synsets)
    how = "copies" if done.copied else "links"
    extra = f"; {done.labelled_not_found} labelled images were not in --images" if done.labelled_not_found else ""
    print(f"resstream: {done.images} images in {done.classes} class folders under {done.out} ({how}){extra}. "
          f"Use it as dataset.path: snakemake --config 'dataset={{path: {done.out}}}'")


if __name__ == "__main__":
    sys.exit(main())
