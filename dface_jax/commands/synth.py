"""``dface-jax synth``: write SynthFACS data to disk.

Presets: ``talking`` (ArrayRecord clip shards for tokenizer pretraining), the ME sets
``composite``, ``casme2``, ``samm``, ``smic`` (an ``.npz`` of ``MEClip``s, or with
``--layout`` the real dataset's folder layout and coding sheet), and ``grid`` (the
identities x actions picture ``synthfacs_grid.png``).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

HELP = "write SynthFACS synthetic faces (talking clips or ME sets) to disk"
PRESETS = ("talking", "composite", "casme2", "samm", "smic", "grid")
LAYOUTS = ("casme2", "samm", "smic", "composite")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, choices=PRESETS)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels (square)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-clips", type=int, default=256,
                        help="talking: number of clips (ME presets have fixed counts)")
    parser.add_argument("--num-frames", type=int, default=16, help="talking: frames per clip")
    parser.add_argument("--clips-per-shard", type=int, default=256, help="talking: shard size")
    parser.add_argument("--frames-per-clip", type=int, default=9, help="ME presets: frames per clip")
    parser.add_argument("--label-noise", type=float, default=0.0, help="ME presets: label noise")
    parser.add_argument("--layout", choices=LAYOUTS, default=None,
                        help="ME presets: write the real dataset's layout instead of an .npz")


def _write_talking(args: argparse.Namespace, out_dir: pathlib.Path) -> str:
    try:
        from data_pipelines.clip_shards import write_clip_shards
    except ImportError as error:
        raise RuntimeError("--preset talking needs data_pipelines.clip_shards.write_clip_shards, "
                           f"which could not be imported ({error})") from error
    from data_pipelines.synthetic import talking_clips

    chunk = 64  # clips rendered at a time, so memory stays small for any --num-clips

    def clips():
        for index, first in enumerate(range(0, args.num_clips, chunk)):
            rendered = talking_clips(seed=args.seed * 100003 + index,
                                     num_clips=min(chunk, args.num_clips - first),
                                     num_frames=args.num_frames, size=args.size)
            for frames in rendered["frames"]:
                yield np.round(frames * 255).astype(np.uint8)

    paths = write_clip_shards(clips(), out_dir, clips_per_shard=args.clips_per_shard)
    return f"wrote {args.num_clips} talking clips in {len(paths)} shard(s) to {out_dir}"


def _write_me(args: argparse.Namespace, out_dir: pathlib.Path) -> str:
    from data_pipelines.synthetic import me_clips, save_me_clips_npz

    clips = me_clips(args.preset, size=args.size, seed=args.seed,
                     frames_per_clip=args.frames_per_clip, label_noise=args.label_noise)
    if args.layout is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"synthfacs_{args.preset}.npz"
        save_me_clips_npz(clips, path)
        return f"wrote {len(clips)} {args.preset} clips to {path}"
    try:
        from data_pipelines.layouts import write_layout
    except ImportError as error:
        raise RuntimeError("--layout needs data_pipelines.layouts.write_layout, which could "
                           f"not be imported ({error})") from error
    written = write_layout(clips, args.layout, out_dir)
    return f"wrote {written['num_clips']} {args.preset} clips in the {args.layout} layout to {out_dir}"


def run(args: argparse.Namespace, config_overrides: list[str]) -> int:
    del config_overrides  # synth takes no config file
    out_dir = pathlib.Path(args.out)
    if args.size < 16:
        raise SystemExit(f"--size must be >= 16, got {args.size}")
    if args.layout is not None and args.preset in ("talking", "grid"):
        raise SystemExit(f"--layout applies to the ME presets, not --preset {args.preset}")
    if args.preset == "grid":
        from data_pipelines.synthetic import save_grid_png

        message = f"wrote {save_grid_png(out_dir, seed=args.seed, size=args.size)}"
    elif args.preset == "talking":
        message = _write_talking(args, out_dir)
    else:
        message = _write_me(args, out_dir)
    print(message)
    return 0
