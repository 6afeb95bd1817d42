"""``dface-jax import-torch --checkpoint vae.736000.pt --kind tokenizer --workdir W``: convert the
authors' released PyTorch state dict into a workdir (Orbax checkpoint + ``config.json``) that
``load_tokenizer`` / ``load_classifier`` and ``extract-tokens --tokenizer W`` read. The config
is inferred from the weights' shapes; see dface_jax/convert/export.py for the layout."""

from __future__ import annotations

import argparse

HELP = "convert the authors' released PyTorch checkpoint to an Orbax checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="the state dict: .pt/.pth (needs `pip install -e \".[torch]\"`), "
                             ".safetensors or .npz")
    parser.add_argument("--kind", required=True, choices=("tokenizer", "classifier"),
                        help="tokenizer = LatentActionQuantization (vae.736000.pt), "
                             "classifier = VQCodeTransformer")
    parser.add_argument("--workdir", required=True, help="the workdir to create")
    parser.add_argument("--prefix", default="",
                        help="use only keys under this prefix (e.g. tokenizer/ in the parity fixture)")
    parser.add_argument("--heads", type=int, default=None,
                        help="classifier attention heads (not stored in the weights; default 8 "
                             "as released); for a tokenizer, checked against the weights")
    parser.add_argument("--image-size", type=int, default=None,
                        help="tokenizer: the frame size you expect (checked against the weights)")
    parser.add_argument("--channels", type=int, default=None, choices=(1, 3),
                        help="tokenizer: the channels you expect (checked against the weights)")
    parser.add_argument("--label-names", default=None,
                        help="classifier: comma-separated class names in logit order "
                             "(default for 3 classes: negative,positive,surprise)")
    parser.add_argument("--tokenizer", default=None,
                        help="classifier: the tokenizer workdir whose action vectors it reads "
                             "(recorded, so int tokens can be embedded)")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.convert.export import import_checkpoint

    label_names = None if args.label_names is None else [
        name.strip() for name in args.label_names.split(",") if name.strip()]
    out_dir = import_checkpoint(
        args.checkpoint, args.kind, args.workdir, prefix=args.prefix, heads=args.heads,
        image_size=args.image_size, channels=args.channels, label_names=label_names,
        tokenizer_workdir=args.tokenizer)
    print(f"wrote {args.kind} workdir {out_dir} from {args.checkpoint}")
    _print_summary(out_dir, args.kind)
    return 0


def _print_summary(out_dir, kind: str) -> None:
    from dface_jax.workdir import read_config

    config = read_config(out_dir)
    fields = config.tokenizer if kind == "tokenizer" else config.classifier
    print("config: " + ", ".join(f"{key}={value}" for key, value in sorted(fields.items())))
