"""``dface-jax compare --config ... --tokens tokens.npz --workdir W --seeds 0,1,2``: D-FACE
(honest and oracle epoch), its ablations (no EDCLIP, mean pooling, token order shuffled)
and the baselines (pixel CNN, STSTNet, OFF-ApexNet) on the same LOSO folds, each over the
seeds; writes
W/comparison.md and W/comparison.json (and one LOSO workdir per variant and seed)."""

from __future__ import annotations

import argparse

from dface_jax.commands.loso import add_run_arguments

HELP = "D-FACE, ablations and baselines (pixel, STSTNet, OFF-ApexNet) on the same folds"


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects comma-separated integers, got {text!r}")
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--seeds", type=_seeds, default=None,
                        help="comma-separated training seeds (default: config.compare.seeds)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated subset of dface,no_edclip,mean_pooling,"
                             "shuffled_tokens,pixel,ststnet,off_apexnet (default: all)")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.configs import load_config
    from dface_jax.loso.compare import run_comparison
    from dface_jax.tokens.cache import load_token_cache
    from dface_jax.workdir import COMPARISON_TABLE

    config = load_config(args.config, overrides)
    seeds = args.seeds if args.seeds is not None else tuple(config.compare.seeds)
    variants = None if args.variants is None else [v.strip() for v in args.variants.split(",")]
    run_comparison(config, load_token_cache(args.tokens), args.workdir, seeds,
                   text_encoder_dir=args.text_encoder_dir, token_cache_path=args.tokens,
                   variants=variants, keep_going=args.keep_going,
                   allow_config_change=args.allow_config_change)
    from data_pipelines.storage import as_path
    print((as_path(args.workdir) / COMPARISON_TABLE).read_text())
    return 0
