"""``dface-jax extract-tokens --tokenizer W --data-dir DIR --dataset composite --out tokens.npz``:
encode every clip's (onset, apex) pair with a frozen tokenizer into the LOSO token cache,
with the baselines' images (frame difference; optical flow and strain, OpenCV DIS; see
dface_jax/tokens/cache.py for the fields)."""

from __future__ import annotations

import argparse

from dface_jax.tokens.flow import FLOW_SIZE

HELP = "encode every clip's (onset, apex) pair into 16 action tokens"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer", required=True,
                        help="a tokenizer workdir (from pretrain or import-torch)")
    parser.add_argument("--data-dir", required=True, help="the data_dir `dface-jax prepare` built into")
    parser.add_argument("--dataset", default="composite",
                        choices=("composite", "casme2", "samm", "smic", "casme3"))
    parser.add_argument("--build-config", default=None,
                        help="which build of the dataset (needed only if DIR holds several)")
    parser.add_argument("--out", required=True, help="the .npz token cache to write")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--difference-size", type=int, default=32,
                        help="side of the stored apex-minus-onset image (pixel baseline input)")
    parser.add_argument("--flow-size", type=int, default=FLOW_SIZE,
                        help="side of the stored onset-apex optical flow and strain (STSTNet "
                             "and OFF-ApexNet input; 28 as published)")
    parser.add_argument("--keep-frames", action="store_true",
                        help="also store every (onset, apex) pair (float16), which LOSO with "
                             "finetune_tokenizer=True needs")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    import time

    import numpy as np

    from dface_jax.tokens.cache import save_token_cache
    from dface_jax.tokens.extract import extract_dataset

    start = time.perf_counter()
    cache = extract_dataset(args.tokenizer, args.dataset, args.data_dir,
                            batch_size=args.batch_size, difference_size=args.difference_size,
                            build_config=args.build_config, keep_frames=args.keep_frames,
                            flow_size=args.flow_size)
    path = save_token_cache(args.out, cache)
    used = len(np.unique(cache["action_tokens"]))
    print(f"wrote {path}: {len(cache['labels'])} clips, {len(np.unique(cache['subjects']))} "
          f"subjects, classes {[str(n) for n in cache['label_names']]}, {used} distinct codes, "
          f"action vectors {cache['action_vectors'].shape[1:]}, "
          f"{time.perf_counter() - start:.1f} s")
    return 0
