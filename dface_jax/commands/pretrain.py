"""``dface-jax pretrain --config FILE --workdir W``: pretrain the action tokenizer.

Resumes automatically from the latest checkpoint in ``W`` (refusing a config that differs
from the one ``W`` was started with, unless ``--allow-config-change``). With a synthetic
config whose ``data.dir`` is empty, SynthFACS talking clips are rendered into ``W/data``
first. On a multi-host TPU slice run the same command on every host with ``--distributed``
(see experiments/launch/tpu_pod.sh).
"""

from __future__ import annotations

import argparse

HELP = "pretrain the C-VQ-VAE action tokenizer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="experiment config, e.g. experiments/configs/pretrain_synthetic.py[:tiny]")
    parser.add_argument("--workdir", required=True, help="run directory (checkpoints, metrics)")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume a workdir with a config that differs from its config.json "
                             "(the new one replaces it)")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() first (multi-host TPU/GPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    import jax

    if args.distributed:
        jax.distributed.initialize()

    from dface_jax.configs import load_config
    from dface_jax.pretrain.loop import run_pretraining

    config = load_config(args.config, overrides)
    state = run_pretraining(config, args.workdir, progress=not args.no_progress,
                            allow_config_change=args.allow_config_change)
    if jax.process_index() == 0:
        print(f"pretrained to step {int(state['step'])}; checkpoints and metrics.jsonl in "
              f"{args.workdir}")
    return 0
