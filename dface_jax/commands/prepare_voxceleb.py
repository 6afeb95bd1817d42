"""``dface-jax prepare-voxceleb --manual-dir VOX --data-dir SHARDS``: a VoxCeleb tree (mp4
or frame folders) -> ArrayRecord clip shards."""

from __future__ import annotations

import argparse

HELP = "turn a VoxCeleb tree (mp4 or frame folders) into ArrayRecord clip shards"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manual-dir", required=True,
                        help="tree of id10001/1zcIwhmdeo4/00001.mp4 files or of frame folders")
    parser.add_argument("--data-dir", required=True, help="the folder the clip shards go to")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--frame-stride", type=int, default=1, help="keep every k-th frame")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames per clip")
    parser.add_argument("--min-frames", type=int, default=2)
    parser.add_argument("--clips-per-shard", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (0: in-process)")
    parser.add_argument("--trust-cropped", action="store_true",
                        help="frames are already face crops: no detection, resize only")
    parser.add_argument("--face-detector", default="haar",
                        help="'haar', 'haar:PATH.xml' or 'yunet:PATH.onnx' (see data_pipelines/faces.py)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip undecodable or too short clips and report them")
    parser.add_argument("--keep-decoded", action="store_true",
                        help="keep the per-clip decode cache after the shards are written")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from data_pipelines.talking_faces.voxceleb import prepare_voxceleb

    summary = prepare_voxceleb(
        args.manual_dir, args.data_dir, image_size=args.image_size,
        frame_stride=args.frame_stride, max_frames=args.max_frames, min_frames=args.min_frames,
        clips_per_shard=args.clips_per_shard, workers=args.workers,
        trust_cropped=args.trust_cropped, face_detector=args.face_detector,
        skip_bad=args.skip_bad, keep_decoded=args.keep_decoded)
    state = "already complete, nothing to do" if summary["already_complete"] else "written"
    print(f"clip shards in {args.data_dir}: {state}")
    print(f"  clips {summary['num_clips']} (decoded now {summary['decoded']}, reused "
          f"{summary['reused']}), shards {len(summary['shards'])}, image size {summary['image_size']}")
    print(f"  face crop: {summary['face_crop']}; no face found (centred square): "
          f"{len(summary['face_fallback'])}")
    for clip in summary["face_fallback"]:
        print(f"    {clip}")
    print(f"  skipped: {len(summary['skipped'])}")
    for item in summary["skipped"]:
        print(f"    {item['clip']}: {item['reason']}")
    return 0
