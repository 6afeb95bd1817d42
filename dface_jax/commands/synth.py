"""``dface-jax synth``: write synthetic faces to disk.

Presets: ``talking`` (the clip shards ``pretrain`` trains on, from the ``data`` section of
a pretraining config: the same generator and the same settings), the ME sets
``composite``, ``casme2``, ``samm``, ``smic`` (an ``.npz`` of ``MEClip``s, or with
``--layout`` the real dataset's folder layout and coding sheet, drawn by ``--renderer``),
and ``grid`` (SynthFACS's identities x actions picture ``synthfacs_grid.png``).
"""

from __future__ import annotations

import argparse
import pathlib

HELP = "write synthetic faces (talking clips or ME sets) to disk"
PRESETS = ("talking", "composite", "casme2", "samm", "smic", "grid")
LAYOUTS = ("casme2", "samm", "smic", "composite")
DEFAULT_TALKING_CONFIG = "pretrain_synthetic.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from data_pipelines.synthetic import RENDERERS

    parser.add_argument("--preset", required=True, choices=PRESETS)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=None,
                        help=f"talking: the pretraining config whose data section to render "
                             f"(default {DEFAULT_TALKING_CONFIG}; its tokenizer.image_size "
                             "sets the frame size)")
    parser.add_argument("--renderer", default="synthfacs", choices=sorted(RENDERERS),
                        help="ME presets: the face renderer")
    parser.add_argument("--size", type=int, default=64,
                        help="ME presets and grid: frame size in pixels (square)")
    parser.add_argument("--seed", type=int, default=0, help="ME presets and grid")
    parser.add_argument("--frames-per-clip", type=int, default=9, help="ME presets: frames per clip")
    parser.add_argument("--label-noise", type=float, default=0.0, help="ME presets: label noise")
    parser.add_argument("--layout", choices=LAYOUTS, default=None,
                        help="ME presets: write the real dataset's layout instead of an .npz")


def _write_talking(args: argparse.Namespace, overrides: list[str], out_dir: pathlib.Path) -> str:
    from dface_jax.configs import load_config
    from dface_jax.pretrain.data import DataConfig, write_synthetic_shards

    config = load_config(args.config or DEFAULT_TALKING_CONFIG, overrides)
    data = DataConfig.from_dict(config.data)
    write_synthetic_shards(data, config.tokenizer.image_size, out_dir)
    return (f"wrote {data.num_clips} talking clips of {config.tokenizer.image_size} px to "
            f"{out_dir} (the data section of {args.config or DEFAULT_TALKING_CONFIG})")


def _write_me(args: argparse.Namespace, out_dir: pathlib.Path) -> str:
    from data_pipelines.synthetic import me_clips, save_me_clips_npz

    clips = me_clips(args.preset, size=args.size, seed=args.seed,
                     frames_per_clip=args.frames_per_clip, label_noise=args.label_noise,
                     renderer=args.renderer)
    if args.layout is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{args.renderer}_{args.preset}.npz"
        save_me_clips_npz(clips, path)
        return f"wrote {len(clips)} {args.preset} clips ({args.renderer}) to {path}"
    from data_pipelines.me.layouts import write_layout

    written = write_layout(clips, args.layout, out_dir)
    return (f"wrote {written['num_clips']} {args.preset} clips ({args.renderer}) in the "
            f"{args.layout} layout to {out_dir}")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    out_dir = pathlib.Path(args.out)
    if args.size < 16:
        raise SystemExit(f"--size must be >= 16, got {args.size}")
    if args.layout is not None and args.preset in ("talking", "grid"):
        raise SystemExit(f"--layout applies to the ME presets, not --preset {args.preset}")
    if (args.config or overrides) and args.preset != "talking":
        raise SystemExit("--config and --config.field=value apply to --preset talking")
    if args.preset == "grid":
        from data_pipelines.synthetic import save_grid_png

        message = f"wrote {save_grid_png(out_dir, seed=args.seed, size=args.size)}"
    elif args.preset == "talking":
        message = _write_talking(args, overrides, out_dir)
    else:
        message = _write_me(args, out_dir)
    print(message)
    return 0
