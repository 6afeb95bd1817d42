"""``dface-jax loso --config experiments/configs/loso_composite.py --tokens tokens.npz --workdir W``:
leave-one-subject-out training of every fold at once (one vmapped program) from a token
cache; writes results.json/.md, confusion.png, folds.json, metrics.jsonl, predictions.npz
and one checkpoint of all folds (see dface_jax/train/mer.py)."""

from __future__ import annotations

import argparse

HELP = "leave-one-subject-out training and evaluation from a token cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="a LOSO config file (path.py[:variant])")
    parser.add_argument("--tokens", required=True, help="the token cache from extract-tokens")
    parser.add_argument("--workdir", required=True, help="the run's directory")
    parser.add_argument("--clip-dir", default=None,
                        help="local Hugging Face text encoder for the EDCLIP anchors "
                             "(default: config.text_encoder_dir; none = random, non-semantic)")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.configs import load_config
    from dface_jax.train.extract import load_token_cache
    from dface_jax.train.mer import run_loso

    config = load_config(args.config, overrides)
    cache = load_token_cache(args.tokens)
    run_loso(config, cache, args.workdir, clip_dir=args.clip_dir)
    print(f"wrote {args.workdir}/results.json, results.md, confusion.png, predictions.npz")
    return 0
