"""``dface-jax report --workdir W``: rebuild the pictures and ``index.html`` of a finished run.

``W`` is a quickstart folder, a pretraining workdir or a LOSO workdir; pictures whose
inputs are missing are listed as such on the page and here.
"""

from __future__ import annotations

import argparse

HELP = "rebuild the pictures and index.html of a finished run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True,
                        help="a quickstart folder, a pretraining workdir or a LOSO workdir")
    parser.add_argument("--report-dir", default=None, help="report folder (default: WORKDIR/report)")
    parser.add_argument("--top-k", type=int, default=4,
                        help="most-attended token positions applied to new faces")
    parser.add_argument("--num-faces", type=int, default=4, help="new faces in the transfer grid")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.report.page import report_for_workdir

    built = report_for_workdir(args.workdir, args.report_dir, top_k=args.top_k,
                               num_faces=args.num_faces)
    for name, path in built["pictures"].items():
        print(f"drew {name}: {path}")
    for name, reason in built["missing"].items():
        print(f"not drawn {name}: {reason}")
    print(f"report: {built['index']}")
    return 0
