"""Face crop for micro-expression clips and talking-face video: one box per clip.

A micro-expression is a movement of a few pixels, so every frame of a clip must be cut
with the *same* box (per-frame boxes jitter by more than the expression moves). The box
is detected once, on the onset frame (in gray), enlarged to a square with a margin, and
applied to every frame; frames are then resized to ``image_size``, gray or RGB as the
dataset is built (:func:`read_gray` / :func:`read_rgb`).

Detectors (all offline, no weights are downloaded):
- ``"haar"``: OpenCV's frontal-face Haar cascade. opencv-python(-headless) 4.x ships the
  XML files in ``cv2.data.haarcascades``; **OpenCV 5.0 removed ``cv2.CascadeClassifier``
  and the bundled cascades** from the main package, so on 5.x this detector is unavailable
  and asking for it raises :class:`FaceDetectorUnavailable` (a cascade XML of your own can
  be given as ``"haar:/path/haarcascade_frontalface_default.xml"`` on OpenCV 4.x).
- ``"yunet:/path/face_detection_yunet.onnx"``: OpenCV's ``FaceDetectorYN`` (4.5.4+ and
  5.x) with a YuNet model file you provide.
- ``trust_cropped=True`` skips detection: the frames are already face crops (CASME II
  ``Cropped/``, SynthFACS) and are only made gray and resized.

When the detector finds no face in the onset frame the clip falls back to the centred
square; the caller gets ``CropInfo.fallback=True`` and must report it (the dataset
builders list such clips in their summary).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from data_pipelines.errors import InputError

# (x, y, w, h) in pixels of the frame the detector saw.
Box = tuple[int, int, int, int]
# A detector maps a gray uint8 [H, W] frame to the boxes of the faces it finds.
FaceDetector = Callable[[np.ndarray], list[Box]]

# Margin added around the detector's box on each side, as a fraction of its size: Haar
# boxes cut the chin and the brows, where many action units live.
DEFAULT_MARGIN = 0.15


class FaceDetectorUnavailable(InputError, RuntimeError):
    """The requested face detector cannot run with the installed OpenCV."""


class ImageReadError(InputError, ValueError):
    """An image file is missing or cannot be decoded (names the file)."""


@dataclasses.dataclass(frozen=True)
class CropInfo:
    """How a clip was cropped: the box on the source frames, and whether it is a fallback."""

    box: Box
    fallback: bool
    method: str  # "detector", "center_fallback" or "trusted"


def _decode(path: str | os.PathLike, flag: int) -> np.ndarray:
    """Decodes an image file with ``cv2.imdecode(.., flag)``; raises :class:`ImageReadError`
    naming the file if it is missing or cannot be decoded."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found")
    # imdecode from bytes copes with non-ASCII paths where imread does not.
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, flag) if data.size else None
    if image is None:
        raise ImageReadError(f"{path}: unreadable image; expected a JPEG/PNG/BMP file "
                             f"({data.size} bytes could not be decoded)")
    return image


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as gray uint8 [H, W]; raises :class:`ImageReadError` if it can't."""
    return _decode(path, cv2.IMREAD_GRAYSCALE)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as RGB uint8 [H, W, 3] (a gray file gets its level in R, G and B,
    as PIL's ``convert('RGB')`` does); raises :class:`ImageReadError` if it can't."""
    return cv2.cvtColor(_decode(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # OpenCV: BGR


def to_gray(frame: np.ndarray) -> np.ndarray:
    """[H, W], [H, W, 1] or RGB [H, W, 3] uint8 -> gray uint8 [H, W]."""
    if frame.ndim == 2:
        return frame
    if frame.shape[-1] == 1:
        return frame[..., 0]
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def haar_detector(cascade_path: str | None = None, *, min_size_fraction: float = 0.2) -> FaceDetector:
    """OpenCV's frontal-face Haar cascade (see the module docstring for OpenCV 5)."""
    if not hasattr(cv2, "CascadeClassifier"):
        raise FaceDetectorUnavailable(
            f"OpenCV {cv2.__version__} has no cv2.CascadeClassifier (OpenCV 5 moved Haar "
            "cascades out of the main package); install opencv-python-headless<5, or use "
            "'yunet:/path/face_detection_yunet.onnx', or --trust-cropped for frames that "
            "are already face crops")
    if cascade_path is None:
        data_dir = getattr(getattr(cv2, "data", None), "haarcascades", "")
        cascade_path = os.path.join(data_dir, "haarcascade_frontalface_default.xml")
    if not os.path.isfile(cascade_path):
        raise FaceDetectorUnavailable(f"Haar cascade file {cascade_path} not found")
    cascade = cv2.CascadeClassifier(cascade_path)
    if cascade.empty():
        raise FaceDetectorUnavailable(f"Haar cascade file {cascade_path} could not be loaded")

    def detect(gray: np.ndarray) -> list[Box]:
        side = int(min(gray.shape) * min_size_fraction)
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                         minSize=(side, side))
        return [tuple(int(v) for v in box) for box in found]

    return detect


def yunet_detector(model_path: str, *, score_threshold: float = 0.6) -> FaceDetector:
    """OpenCV's ``FaceDetectorYN`` with a local YuNet ONNX model file."""
    if not hasattr(cv2, "FaceDetectorYN"):
        raise FaceDetectorUnavailable(f"OpenCV {cv2.__version__} has no cv2.FaceDetectorYN")
    if not os.path.isfile(model_path):
        raise FaceDetectorUnavailable(f"YuNet model file {model_path} not found")
    net = cv2.FaceDetectorYN.create(model_path, "", (320, 320), score_threshold)

    def detect(gray: np.ndarray) -> list[Box]:
        net.setInputSize((gray.shape[1], gray.shape[0]))
        _, faces = net.detect(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
        if faces is None:
            return []
        return [tuple(int(v) for v in face[:4]) for face in faces]

    return detect


def make_detector(spec: str) -> FaceDetector:
    """``"haar"``, ``"haar:PATH.xml"`` or ``"yunet:PATH.onnx"`` -> a detector."""
    kind, _, path = spec.partition(":")
    if kind == "haar":
        return haar_detector(path or None)
    if kind == "yunet" and path:
        return yunet_detector(path)
    raise ValueError(f"face detector {spec!r}: expected 'haar', 'haar:PATH.xml' or "
                     "'yunet:PATH.onnx'")


def square_box(box: Box, frame_shape: tuple[int, int], margin: float = DEFAULT_MARGIN) -> Box:
    """Grows ``box`` by ``margin`` per side into a square, kept inside the frame."""
    height, width = frame_shape
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    side = min(side, height, width)
    center_x, center_y = x + w / 2, y + h / 2
    left = int(round(min(max(center_x - side / 2, 0), width - side)))
    top = int(round(min(max(center_y - side / 2, 0), height - side)))
    return left, top, side, side


def center_box(frame_shape: tuple[int, int]) -> Box:
    """The largest centred square of the frame."""
    height, width = frame_shape
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def clip_box(onset_gray: np.ndarray, detector: FaceDetector | None,
             margin: float = DEFAULT_MARGIN) -> CropInfo:
    """The one box for a clip, from its onset frame (the largest face the detector finds)."""
    if detector is None:
        return CropInfo(box=(0, 0, onset_gray.shape[1], onset_gray.shape[0]), fallback=False,
                        method="trusted")
    boxes = detector(onset_gray)
    if not boxes:
        return CropInfo(box=center_box(onset_gray.shape), fallback=True, method="center_fallback")
    largest = max(boxes, key=lambda b: b[2] * b[3])
    return CropInfo(box=square_box(largest, onset_gray.shape, margin), fallback=False,
                    method="detector")


def crop_resize(frame: np.ndarray, box: Box, image_size: int) -> np.ndarray:
    """Cuts ``box`` out of a gray [H, W] or RGB [H, W, 3] frame and resizes it -> uint8
    [S, S] or [S, S, 3]."""
    x, y, w, h = box
    if frame.shape[0] < y + h or frame.shape[1] < x + w:
        raise ValueError(f"frame of shape {frame.shape} is smaller than the clip's box {box}; "
                         "expected every frame of a clip to have the onset frame's size")
    patch = frame[y:y + h, x:x + w]
    # INTER_AREA averages when shrinking (no aliasing), the usual case here.
    interpolation = cv2.INTER_AREA if min(w, h) >= image_size else cv2.INTER_LINEAR
    return cv2.resize(patch, (image_size, image_size), interpolation=interpolation)


def crop_clip(frames: Sequence[np.ndarray], *, image_size: int,
              detector: FaceDetector | None) -> tuple[np.ndarray, CropInfo]:
    """Crops every frame of a clip with the box found on ``frames[0]`` (the onset).

    Args:
      frames: gray or RGB uint8 frames of one clip, onset first, all of one size.
      image_size: output side S.
      detector: a face detector, or None for trusted (already cropped) frames, which are
        resized whole.
    Returns:
      (uint8 [N, S, S, 1], CropInfo).
    """
    grays = [to_gray(f) for f in frames]
    info = clip_box(grays[0], detector)
    out = np.stack([crop_resize(g, info.box, image_size) for g in grays])
    return out[..., None], info
