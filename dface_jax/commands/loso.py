"""``dface-jax loso --config experiments/configs/loso_composite.py --tokens tokens.npz --workdir W``:
leave-one-subject-out training of every fold at once (one vmapped program) from a token
cache; writes results.json/.md, confusion.png, folds.json, metrics.jsonl, predictions.npz
and one checkpoint of all folds (see dface_jax/loso/run.py). A workdir that finished with
the same config is not trained again."""

from __future__ import annotations

import argparse

HELP = "leave-one-subject-out training and evaluation from a token cache"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``loso`` and ``compare`` share."""
    parser.add_argument("--config", required=True, help="a LOSO config file (path.py[:variant])")
    parser.add_argument("--tokens", required=True, help="the token cache from extract-tokens")
    parser.add_argument("--workdir", required=True, help="the run's directory")
    parser.add_argument("--text-encoder-dir", default=None,
                        help="local Hugging Face text model for the EDCLIP anchors "
                             "(default: config.text_encoder_dir; none = random, non-semantic)")
    parser.add_argument("--keep-going", action="store_true",
                        help="score folds whose loss became NaN/inf instead of failing")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="rerun a workdir with a config that differs from its config.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.configs import load_config
    from dface_jax.loso.run import run_loso
    from dface_jax.tokens.cache import load_token_cache

    config = load_config(args.config, overrides)
    run_loso(config, load_token_cache(args.tokens), args.workdir,
             text_encoder_dir=args.text_encoder_dir, token_cache_path=args.tokens,
             keep_going=args.keep_going, allow_config_change=args.allow_config_change)
    print(f"wrote {args.workdir}/results.json, results.md, confusion.png, predictions.npz")
    return 0
