"""The ``dface-jax`` command.

Each subcommand lives in ``dface_jax/commands/<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args, config_overrides) -> int``. Modules are imported
only when their subcommand runs, so ``dface-jax --help`` stays fast and a missing optional
dependency of one command does not break the others.

One vocabulary for every command: ``--manual-dir`` raw input as its owners distribute it,
``--data-dir`` a built dataset (TFDS build or clip shards), ``--workdir`` the run directory
the command owns, ``--out`` a single output file, ``--text-encoder-dir`` a local text model,
``--image-size`` a frame size in pixels. Workdirs, ``--data-dir``, ``--tokens`` and
``--out`` may be ``gs://`` URIs (``data_pipelines/storage.py``); ``--manual-dir``, source
trees, configs and ``--text-encoder-dir`` are local.

Errors: an expected error (:class:`data_pipelines.errors.InputError`: bad data, a bad
config, a missing or foreign workdir, a mismatched checkpoint, a diverged run) prints one
line, ``dface-jax COMMAND: error: ...``, and exits with status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
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
    "plan": "plan",
}

_HELP = {
    "synth": "write synthetic faces (talking clips, ME sets in the owners' layouts) to disk",
    "prepare": "build a micro-expression dataset (CASME II, SAMM, SMIC-HS, composite) from its own layout",
    "prepare-voxceleb": "turn a VoxCeleb tree (mp4 or frame folders) into ArrayRecord clip shards",
    "pretrain": "pretrain the C-VQ-VAE action tokenizer",
    "eval-tokenizer": "score a tokenizer on held-out synthetic faces",
    "extract-tokens": "encode every clip's (onset, apex) pair into 16 action tokens",
    "loso": "leave-one-subject-out training and evaluation from a token cache",
    "compare": "D-FACE, ablations and baselines (pixel, STSTNet, OFF-ApexNet) on the same folds",
    "import-torch": "convert the authors' released PyTorch checkpoint into a workdir",
    "report": "rebuild the pictures and index.html of a finished run",
    "quickstart": "the whole method on synthetic data in one command",
    "plan": "compile a run's programs for a TPU slice: memory, FLOPs and XLA's time estimates",
}
EXIT_INPUT_ERROR = 2


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dface-jax")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dface-jax",
        description="D-FACE in JAX: discrete facial action tokens for micro-expression recognition.",
        epilog="Config fields are overridden with --config.field=value after --config FILE.")
    parser.add_argument("--version", action="version", version=f"dface-jax {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub.add_parser(name, help=_HELP[name], add_help=False)
    return parser


def configure_logging() -> None:
    """INFO from dface-jax's own loggers (resumes, skips, stages) on stderr, one plain line
    each; other libraries stay at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("dface_jax", "data_pipelines"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help", "--version"):
            parser.parse_args(argv[:1])  # prints and exits 0
        if argv:
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help(sys.stderr)
        return EXIT_INPUT_ERROR
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f"dface_jax.commands.{COMMANDS[name]}")
    command_parser = argparse.ArgumentParser(prog=f"dface-jax {name}", description=_HELP[name])
    module.add_arguments(command_parser)
    # `--config.field=value` overrides are not argparse options: collect them separately.
    overrides = [a for a in rest if a.startswith("--config.")]
    args = command_parser.parse_args([a for a in rest if not a.startswith("--config.")])
    if overrides and not hasattr(args, "config"):
        command_parser.error(f"{name} takes no --config, so {overrides[0]} cannot apply")
    configure_logging()
    from data_pipelines.errors import InputError

    try:
        return int(module.run(args, overrides) or 0)
    except InputError as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"dface-jax {name}: error: {message}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
