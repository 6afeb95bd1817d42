"""``dface-jax synth``: write synthetic faces to disk.

Presets and where they go:
  * ``talking --data-dir DIR``: the clip shards ``pretrain`` trains on, from the ``data``
    section of a pretraining config (``--config``; the same generator and settings);
  * ``composite``, ``casme2``, ``samm``, ``smic``, ``casme3`` (drawn by ``--renderer``):
    ``--layout NAME --manual-dir DIR`` writes the real dataset's folders and coding sheet
    (what ``prepare --manual-dir`` reads), ``--out FILE.npz`` an ``.npz`` of ``MEClip``s;
  * ``grid --out FILE.png``: SynthFACS's identities x actions picture.
"""

from __future__ import annotations

import argparse

from data_pipelines.errors import InputError

HELP = "write synthetic faces (talking clips, ME sets in the owners' layouts) to disk"
ME_PRESETS = ("composite", "casme2", "samm", "smic", "casme3")
PRESETS = ("talking", *ME_PRESETS, "grid")
LAYOUTS = ("casme2", "samm", "smic", "composite", "casme3")
DEFAULT_TALKING_CONFIG = "pretrain_synthetic.py"


class SynthUsageError(InputError, ValueError):
    """The options do not name one output of the preset."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from data_pipelines.synthetic import RENDERERS

    parser.add_argument("--preset", required=True, choices=PRESETS)
    parser.add_argument("--data-dir", default=None, help="talking: the clip-shard folder to write")
    parser.add_argument("--manual-dir", default=None,
                        help="ME presets with --layout: the folder the dataset's layout goes to")
    parser.add_argument("--out", default=None,
                        help="ME presets without --layout: the .npz to write; grid: the .png")
    parser.add_argument("--config", default=None,
                        help=f"talking: the pretraining config whose data section to render "
                             f"(default {DEFAULT_TALKING_CONFIG}; its tokenizer.image_size "
                             "sets the frame size)")
    parser.add_argument("--renderer", default="synthfacs", choices=sorted(RENDERERS),
                        help="ME presets: the face renderer")
    parser.add_argument("--layout", choices=LAYOUTS, default=None,
                        help="ME presets: write the real dataset's layout into --manual-dir")
    parser.add_argument("--image-size", type=int, default=64,
                        help="ME presets and grid: frame size in pixels (square)")
    parser.add_argument("--seed", type=int, default=0, help="ME presets and grid")
    parser.add_argument("--frames-per-clip", type=int, default=9, help="ME presets: frames per clip")
    parser.add_argument("--label-noise", type=float, default=0.0, help="ME presets: label noise")


def _check(args: argparse.Namespace, overrides: list[str]) -> None:
    """Each preset writes to exactly one place, named by its own option."""
    wanted = {"talking": "data_dir", "grid": "out"}.get(
        args.preset, "manual_dir" if args.layout else "out")
    given = [name for name in ("data_dir", "manual_dir", "out") if getattr(args, name)]
    if given != [wanted]:
        flag = "--" + wanted.replace("_", "-")
        raise SynthUsageError(f"--preset {args.preset}{' --layout' if args.layout else ''} "
                              f"writes to {flag} (and nothing else); got "
                              f"{['--' + g.replace('_', '-') for g in given] or 'none'}")
    if args.layout is not None and args.preset not in ME_PRESETS:
        raise SynthUsageError(f"--layout applies to the ME presets, not --preset {args.preset}")
    if (args.config or overrides) and args.preset != "talking":
        raise SynthUsageError("--config and --config.field=value apply to --preset talking")
    if args.image_size < 16:
        raise SynthUsageError(f"--image-size must be >= 16, got {args.image_size}")


def _write_talking(args: argparse.Namespace, overrides: list[str]) -> str:
    from dface_jax.configs import load_config
    from dface_jax.pretrain.data import DataConfig, write_synthetic_shards

    config = load_config(args.config or DEFAULT_TALKING_CONFIG, overrides)
    data = DataConfig.from_dict(config.data)
    write_synthetic_shards(data, config.tokenizer.image_size, args.data_dir)
    return (f"wrote {data.num_clips} talking clips of {config.tokenizer.image_size} px to "
            f"{args.data_dir} (the data section of {args.config or DEFAULT_TALKING_CONFIG})")


def _write_me(args: argparse.Namespace) -> str:
    from data_pipelines.synthetic import me_clips, save_me_clips_npz

    clips = me_clips(args.preset, size=args.image_size, seed=args.seed,
                     frames_per_clip=args.frames_per_clip, label_noise=args.label_noise,
                     renderer=args.renderer)
    if args.layout is None:
        save_me_clips_npz(clips, args.out)
        return f"wrote {len(clips)} {args.preset} clips ({args.renderer}) to {args.out}"
    from data_pipelines.me.layouts import write_layout

    written = write_layout(clips, args.layout, args.manual_dir)
    return (f"wrote {written['num_clips']} {args.preset} clips ({args.renderer}) in the "
            f"{args.layout} layout to {args.manual_dir}")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    _check(args, overrides)
    if args.preset == "grid":
        from data_pipelines.synthetic import save_grid_png

        message = f"wrote {save_grid_png(args.out, seed=args.seed, size=args.image_size)}"
    elif args.preset == "talking":
        message = _write_talking(args, overrides)
    else:
        message = _write_me(args)
    print(message)
    return 0
