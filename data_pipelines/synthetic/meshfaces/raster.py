"""MeshFaces rasterisation: perspective camera, Lambert + Blinn-Phong shading and z-buffered
surface splatting, all in numpy.

The mesh is dense (neighbouring points under ~1 px apart at the render resolution), so
each point is splatted to its 2 x 2 nearest pixel centres with bilinear weights; a point
contributes to a pixel only if it is within ``DEPTH_TOLERANCE`` of the nearest depth seen
there (a z-buffer), so hidden surfaces (the cheek behind the nose, the eyeball behind the
lids, the mouth cavity behind the lips) drop out. Rare pixels that no point reaches are
filled from their neighbours.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

DEPTH_TOLERANCE = 0.005  # face units: points this close behind the nearest one still blend


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """[3, 3] head rotation (radians): yaw about y, then pitch about x, then roll about z."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclasses.dataclass(frozen=True)
class Camera:
    """Pinhole camera at the origin looking down -z: a model point p is at camera point
    rotation @ p + translation; pixel (R/2 + focal x / d, R/2 - focal y / d), d = -z."""

    rotation: np.ndarray     # [3, 3]
    translation: np.ndarray  # [3]
    focal: float             # pixels
    size: int                # render resolution R

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return points @ self.rotation.T.astype(np.float32) + self.translation.astype(np.float32)

    def project(self, camera_points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel x, y (pixel i spans [i, i + 1)) and depth of camera points [P, 3]."""
        depth = -camera_points[:, 2]
        scale = self.focal / depth
        return (self.size / 2 + camera_points[:, 0] * scale,
                self.size / 2 - camera_points[:, 1] * scale, depth)

    def eye_in_model(self) -> np.ndarray:
        """The camera's position in the model frame."""
        return -self.rotation.T @ self.translation


def make_camera(size: int, yaw: float, pitch: float, roll: float, centre_x: float,
                centre_y: float, face_height: float, distance: float, face_centre: np.ndarray,
                face_span: float) -> Camera:
    """A camera that shows ``face_centre`` (model point) at (centre_x, centre_y) (fractions
    of the frame) with a face of ``face_span`` units spanning ``face_height`` of the frame,
    seen from ``distance`` face units. Angles in radians."""
    rot = rotation(yaw, pitch, roll)
    focal = face_height * size * distance / face_span
    target = np.array([(centre_x - 0.5) * size * distance / focal,
                       -(centre_y - 0.5) * size * distance / focal, -distance])
    return Camera(rot, target - rot @ face_centre, focal, size)


def light_direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector towards the light, camera frame (radians; 0, 0 is the camera)."""
    return np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation),
                     np.cos(azimuth) * np.cos(elevation)])


def shade(normals: np.ndarray, albedo: np.ndarray, spec: np.ndarray,
          shine: np.ndarray, camera: Camera, key: np.ndarray, fill: np.ndarray,
          light: float, ambient: float, fill_strength: float, specular: float) -> np.ndarray:
    """Gray radiance [P] of points with unit normals [P, 3] (model frame): hemispheric
    ambient + Lambertian key and fill lights (unit directions in the camera frame) + a
    Blinn-Phong highlight (viewer direction from the head centre: the camera is several
    head sizes away)."""
    key_m = (camera.rotation.T @ key).astype(np.float32)
    fill_m = (camera.rotation.T @ fill).astype(np.float32)
    up_m = camera.rotation.T[:, 1].astype(np.float32)
    view = camera.eye_in_model()
    half = view / np.linalg.norm(view) + key_m
    half = (half / np.linalg.norm(half)).astype(np.float32)
    lit = normals @ np.stack([key_m, fill_m, up_m, half], 1)  # [P, 4] cosines
    n_key = lit[:, 0]
    diffuse = (ambient * (0.8 + 0.2 * lit[:, 2]) + light * np.maximum(n_key, 0.0)
               + fill_strength * np.maximum(lit[:, 1], 0.0))
    highlight = specular * spec * np.maximum(lit[:, 3], 0.0) ** shine * (n_key > 0)
    return albedo * diffuse + highlight


def splat(px: np.ndarray, py: np.ndarray, depth: np.ndarray, value: np.ndarray,
          size: int) -> tuple[np.ndarray, np.ndarray]:
    """Value [size, size] and coverage (bool) of points at pixel positions px, py with
    depths (smaller is nearer), z-buffered and bilinearly splatted."""
    wide = size + 2  # one pixel of margin on each side keeps every footprint in range
    fx, fy = px - 0.5, py - 0.5
    x0, y0 = np.floor(fx), np.floor(fy)
    inside = (x0 >= -1) & (x0 <= size - 1) & (y0 >= -1) & (y0 <= size - 1)
    fx, fy, x0, y0 = fx[inside], fy[inside], x0[inside], y0[inside]
    depth, value = depth[inside], value[inside]
    ax, ay = (fx - x0).astype(np.float32), (fy - y0).astype(np.float32)
    base = (y0.astype(np.int64) + 1) * wide + x0.astype(np.int64) + 1
    nearest = base + (ax >= 0.5) + wide * (ay >= 0.5)
    zbuf = np.full(wide * wide, np.inf, np.float32)
    np.minimum.at(zbuf, nearest, depth.astype(np.float32))
    targets = np.concatenate([base, base + 1, base + wide, base + wide + 1])
    weights = np.concatenate([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay])
    visible = np.tile(depth, 4) <= zbuf[targets] + DEPTH_TOLERANCE
    targets, weights = targets[visible], weights[visible]
    total = np.bincount(targets, weights, minlength=wide * wide).reshape(wide, wide)
    summed = np.bincount(targets, weights * np.tile(value, 4)[visible],
                         minlength=wide * wide).reshape(wide, wide)
    total, summed = total[1:-1, 1:-1], summed[1:-1, 1:-1]
    covered = total > 0.03
    # holes: pixels that no point reached but most neighbours did take their neighbours' mean
    near_count = cv2.boxFilter(covered.astype(np.float32), -1, (3, 3), normalize=False)
    hole = ~covered & (near_count >= 5)
    if hole.any():
        box_total = cv2.boxFilter(total.astype(np.float32), -1, (3, 3), normalize=False)
        box_summed = cv2.boxFilter(summed.astype(np.float32), -1, (3, 3), normalize=False)
        total = np.where(hole, box_total, total)
        summed = np.where(hole, box_summed, summed)
        covered = covered | hole
    image = np.where(covered, summed / np.maximum(total, 1e-6), 0.0).astype(np.float32)
    return image, covered


# The torso's outline in the model frame (x, y; z = -0.12): neck base, shoulders, sides.
_TORSO = np.array([(0.21, -0.8), (0.55, -0.92), (0.85, -1.06), (1.0, -1.4), (1.05, -3.5)])


def draw_torso(image: np.ndarray, camera: Camera, width: float, tone: float, striped: bool,
               key: np.ndarray, light: float, ambient: float) -> None:
    """Paints the clothed shoulders (a flat-shaded polygon) into ``image`` [R, R] in place."""
    outline = np.concatenate([_TORSO * [width, 1.0], (_TORSO * [-width, 1.0])[::-1]])
    points = np.concatenate([outline, np.full((len(outline), 1), -0.12)], 1)
    px, py, _ = camera.project(camera.to_camera(points.astype(np.float32)))
    polygon = np.round(np.stack([px, py], 1) * 16).astype(np.int32)
    mask = np.zeros(image.shape, np.uint8)
    cv2.fillPoly(mask, [polygon], 255, cv2.LINE_AA, shift=4)
    alpha = mask.astype(np.float32) / 255.0
    normal = camera.rotation @ np.array([0.0, 0.35, 0.94])
    radiance = tone * (ambient + light * max(float(normal @ key), 0.0))
    cloth = np.full(image.shape, radiance, np.float32)
    if striped:
        rows = np.arange(image.shape[0], dtype=np.float32)[:, None]
        period = max(camera.focal * 0.12 / -camera.translation[2], 3.0)
        cloth = cloth * (0.75 + 0.25 * (np.sin(2 * np.pi * rows / period) > 0))
    image += alpha * (cloth - image)
