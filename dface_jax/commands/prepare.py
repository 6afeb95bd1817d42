"""``dface-jax prepare``: build CASME II, SAMM, SMIC-HS, the composite set or CAS(ME)^3 Part A
from its own layout."""

from __future__ import annotations

import argparse

HELP = ("build a micro-expression dataset (CASME II, SAMM, SMIC-HS, composite, CAS(ME)^3 "
        "Part A) from its own layout")
DATASETS = ("casme2", "samm", "smic", "composite", "casme3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--manual-dir", required=True,
                        help="the dataset as distributed (composite: a folder holding CASME2/, "
                             "SAMM/ and SMIC/); see the builder's MANUAL_DOWNLOAD_INSTRUCTIONS")
    parser.add_argument("--data-dir", required=True, help="TFDS data_dir to build into")
    parser.add_argument("--image-size", type=int, default=None,
                        help="frame side in pixels (default: the dataset's, 64; casme3 256 as "
                             "the released script)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None,
                        help="1 gray or 3 RGB (default: the dataset's, gray; casme3 RGB)")
    parser.add_argument("--apex-rule", choices=("middle", "max_difference"), default="middle",
                        help="how to pick the apex where none is annotated (SMIC-HS, CASME II '/')")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unusable clips and print why, instead of stopping at the first")
    parser.add_argument("--trust-cropped", action="store_true",
                        help="frames are already face crops: no face detection, resize only")
    parser.add_argument("--face-detector", default="haar",
                        help="'haar', 'haar:PATH.xml' or 'yunet:PATH.onnx' (see data_pipelines/faces.py)")
    parser.add_argument("--label-csv", default=None,
                        help="composite only: peer-code label CSV (dataset, sub, filename_o, label, apex)")
    # The released CAS(ME)^3 script's data rules are on by default; these turn one off.
    parser.add_argument("--keep-onset-zero", dest="skip_onset_zero", action="store_const",
                        const=False, default=None,
                        help="casme3 only: keep clips whose onset is 0 (the release skips them)")
    parser.add_argument("--keep-apex-at-onset", dest="replace_apex_at_onset",
                        action="store_const", const=False, default=None,
                        help="casme3 only: keep an apex equal to the onset (the release moves it "
                             "to (onset + offset) // 2)")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from data_pipelines.me.datasets import format_summary, prepare_dataset

    summary = prepare_dataset(
        args.dataset, args.manual_dir, args.data_dir, image_size=args.image_size,
        apex_rule=args.apex_rule, skip_bad=args.skip_bad, trust_cropped=args.trust_cropped,
        label_csv=args.label_csv, face_detector=args.face_detector, channels=args.channels,
        skip_onset_zero=args.skip_onset_zero, replace_apex_at_onset=args.replace_apex_at_onset)
    print(format_summary(summary))
    return 0
