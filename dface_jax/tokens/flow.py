"""Onset-to-apex optical flow and optical strain, the inputs of STSTNet and OFF-ApexNet.

Flow: OpenCV's DIS optical flow (Kroeger et al., ECCV 2016; ``cv2.DISOpticalFlow``,
preset ``MEDIUM``) from the onset to the apex frame, on the gray frames at the cache's
build resolution. Both publications use TV-L1, which OpenCV ships only in its contrib
build (``cv2.optflow``); ``opencv-python-headless``, a dependency already, has DIS, a
coarse-to-fine patch search followed by variational refinement. On SynthFACS faces it
recovers a known global shift of 0.3 to 3 px with a median error below 0.05 px
(tests/test_flow.py checks 0.1 px).

Optical strain (STSTNet's third channel): the magnitude of the infinitesimal strain
tensor of the flow field, ``sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2)``, from central
differences at the flow's resolution (before resizing, where the derivatives are
defined; it has no unit, so resizing does not rescale it).

All three are resized to ``size`` x ``size`` (28 in both publications) by area averaging;
u and v are then in pixels of that grid (multiplied by size / width), so a clip's flow
means the same whatever the resolution it was computed at.
"""

from __future__ import annotations

import cv2
import numpy as np

FLOW_SIZE = 28  # both publications resize their flow images to 28 x 28

FLOW_METHOD = (f"OpenCV {cv2.__version__} DIS optical flow (preset medium), onset -> apex on "
               "the gray frames at the build resolution, resized by area to {size}x{size}; "
               "u, v in pixels of that grid; optical strain magnitude from central differences "
               "before resizing")


def to_gray_uint8(frame: np.ndarray) -> np.ndarray:
    """[H, W, C] float in [0, 1] (C = 1 or 3) -> [H, W] uint8, the 8-bit gray image DIS
    reads (RGB to gray with OpenCV's ITU-R 601 weights)."""
    frame = np.asarray(frame, np.float32)
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3):
        raise ValueError(f"expected a frame [H, W, 1 or 3], got shape {frame.shape}")
    gray = frame[..., 0] if frame.shape[-1] == 1 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)


def dense_flow(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """DIS flow from ``onset`` to ``apex`` ([H, W, C] float in [0, 1]) -> float32
    [H, W, 2] (u: horizontal, v: vertical, in pixels): apex(x + flow(x)) ~ onset(x)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(to_gray_uint8(onset), to_gray_uint8(apex), None).astype(np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """[H, W, 2] flow -> [H, W] magnitude of its strain tensor (module doc)."""
    u_y, u_x = np.gradient(flow[..., 0])
    v_y, v_x = np.gradient(flow[..., 1])
    return np.sqrt(u_x ** 2 + v_y ** 2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def onset_apex_flow(onset: np.ndarray, apex: np.ndarray, size: int = FLOW_SIZE
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One clip's flow images: (optical_flow float32 [size, size, 2] (u, v in pixels of
    the size x size grid), optical_strain float32 [size, size, 1])."""
    if size < 1:
        raise ValueError(f"flow size must be >= 1, got {size}")
    flow = dense_flow(onset, apex)
    strain = optical_strain(flow)
    height, width = flow.shape[:2]
    resized = cv2.resize(flow, (size, size), interpolation=cv2.INTER_AREA)
    resized[..., 0] *= size / width
    resized[..., 1] *= size / height
    strain = cv2.resize(strain, (size, size), interpolation=cv2.INTER_AREA)
    return resized.astype(np.float32), strain[..., None].astype(np.float32)
