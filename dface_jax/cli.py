"""The ``dface-jax`` command.

Each subcommand lives in ``dface_jax/commands/<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args, config_overrides) -> int``. Modules are imported
only when their subcommand runs, so ``dface-jax --help`` stays fast and a missing optional
dependency of one command does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module under dface_jax.commands, in the order a user meets them.
COMMANDS = {
    "synth": "synth",
    "prepare": "prepare",
    "prepare-voxceleb": "prepare_voxceleb",
    "pretrain": "pretrain",
    "eval-tokenizer": "eval_tokenizer",
    "extract-tokens": "extract_tokens",
    "loso": "loso",
    "compare": "compare",
    "import-torch": "import_torch",
    "report": "report",
    "quickstart": "quickstart",
}

_HELP = {
    "synth": "write SynthFACS synthetic faces (talking clips or ME sets) to disk",
    "prepare": "build a micro-expression dataset (CASME II, SAMM, SMIC-HS, composite) from its own layout",
    "prepare-voxceleb": "turn a VoxCeleb tree (mp4 or frame folders) into ArrayRecord clip shards",
    "pretrain": "pretrain the C-VQ-VAE action tokenizer",
    "eval-tokenizer": "score a tokenizer on held-out SynthFACS identities",
    "extract-tokens": "encode every clip's (onset, apex) pair into 16 action tokens",
    "loso": "leave-one-subject-out training and evaluation from a token cache",
    "compare": "D-FACE, ablations and the pixel baseline on the same folds, over seeds",
    "import-torch": "convert the authors' released PyTorch checkpoint to an Orbax checkpoint",
    "report": "rebuild the pictures and index.html of a finished run",
    "quickstart": "the whole method on synthetic data in one command",
}


def _load(name: str):
    return importlib.import_module(f"dface_jax.commands.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dface-jax",
        description="D-FACE in JAX: discrete facial action tokens for micro-expression recognition.",
        epilog="Config fields are overridden with --config.field=value after --config FILE.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub.add_parser(name, help=_HELP[name], add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module = _load(name)
    parser = argparse.ArgumentParser(prog=f"dface-jax {name}", description=_HELP[name])
    module.add_arguments(parser)
    # `--config.field=value` overrides are not argparse options: collect them separately.
    overrides = [a for a in rest if a.startswith("--config.")]
    args = parser.parse_args([a for a in rest if not a.startswith("--config.")])
    if overrides and not hasattr(args, "config"):
        parser.error(f"{name} takes no --config, so {overrides[0]} cannot apply")
    return int(module.run(args, overrides) or 0)


if __name__ == "__main__":
    sys.exit(main())
