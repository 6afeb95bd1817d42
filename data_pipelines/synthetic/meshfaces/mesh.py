"""One person's renderable mesh: the head grid with its albedo and action fields, the
eyeballs, the mouth cavity and the neck, built once per person and point spacing.

``build_mesh`` assembles ``head.py`` (shape), ``texture.py`` (paint) and ``actions.py``
(blendshapes). Action fields are stored per AU on the bounding box of the grid where they
are non-zero, so a frame only touches (and re-derives normals on) the part that moves.
"""

from __future__ import annotations

import collections
import dataclasses
import threading

import cv2
import numpy as np

from data_pipelines.synthetic.facs import NUM_AUS
from data_pipelines.synthetic.meshfaces import head as hd
from data_pipelines.synthetic.meshfaces.actions import action_fields, interior_fields
from data_pipelines.synthetic.meshfaces.people import LOOK, SHAPE
from data_pipelines.synthetic.meshfaces.texture import (
    eyeball_albedo, head_albedo, interior_albedo)

FIELD_EPS = 2e-5  # face units: displacements below this are cut off (outside an AU's box)
# Crease self-shadowing: a dent 0.01 face units deeper than the skin within ~0.015 of it
# darkens by 20 %, at most by 45 %.
CREASE_WIDTH, CREASE_GAIN, CREASE_MAX = 0.015, 20.0, 0.45
SKIN_SHINE, EYE_SHINE = 14.0, 60.0


@dataclasses.dataclass(frozen=True)
class PersonMesh:
    """Neutral geometry, paint and action fields of one person.

    points, normals: float32 [K, 3] every rendered point (model frame, face units) and its
    unit normal, in the order head grid (without the lid openings), mouth cavity, eyeballs
    and neck; albedo, spec (specular weight), shine (Phong exponent): [K].
    head: [Nv, Nu, 3] the neutral head grid, head_fallback [Nv, Nu, 3] normals where it
    degenerates (poles), head_index: int [Nv, Nu] each grid point's row in ``points``
    (-1 in the lid openings).
    au_boxes: per AU, (row0, row1, col0, col1) of the grid it moves, or None; au_fields:
    per AU, float32 [row1 - row0, col1 - col0, 3] displacement at intensity 1;
    au_shadows: per AU, float32 [row1 - row0, col1 - col0] darkening of the creases it
    digs, at intensity 1 (see ``crease_shadow``).
    interior: (start, stop) rows of the mouth cavity in ``points``; interior_fields:
    float32 [A, stop - start, 3].
    """

    points: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray
    spec: np.ndarray
    shine: np.ndarray
    head: np.ndarray
    head_fallback: np.ndarray
    head_index: np.ndarray
    au_boxes: tuple[tuple[int, int, int, int] | None, ...]
    au_fields: tuple[np.ndarray | None, ...]
    au_shadows: tuple[np.ndarray | None, ...]
    interior: tuple[int, int]
    interior_fields: np.ndarray
    shape: np.ndarray  # the person's rows, for the torso's width and the clothes
    look: np.ndarray


def crease_shadow(field: np.ndarray, normals: np.ndarray, spacing: float) -> np.ndarray:
    """Darkening [H, W] in [0, CREASE_MAX] where a displacement field [H, W, 3] sinks the
    skin below its surroundings (a fold, furrow or dimple), from the field's component
    along the neutral normals [H, W, 3]. The shading has no cast shadows, so this stands
    in for the self-shadowing of the crease's walls; it is linear in the intensity like
    the field itself."""
    along = np.einsum("hwc,hwc->hw", field, normals).astype(np.float32)
    around = cv2.GaussianBlur(along, (0, 0), CREASE_WIDTH / spacing)
    return np.clip(CREASE_GAIN * (around - along), 0.0, CREASE_MAX)


def _crop_fields(fields: np.ndarray):
    """Per AU: the bounding box (rows, cols) where the field exceeds FIELD_EPS, and it."""
    boxes, crops = [], []
    size = np.abs(fields)
    size = np.maximum(np.maximum(size[..., 0], size[..., 1]), size[..., 2])  # [A, Nv, Nu]
    for f, magnitude in zip(fields, size):
        big = magnitude > FIELD_EPS
        if not big.any():
            boxes.append(None)
            crops.append(None)
            continue
        rows, cols = np.flatnonzero(big.any(1)), np.flatnonzero(big.any(0))
        box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        crop = f[box[0]:box[1], box[2]:box[3]] * big[box[0]:box[1], box[2]:box[3], None]
        boxes.append(box)
        crops.append(crop)
    return tuple(boxes), tuple(crops)


def _sphere_patch(centre: np.ndarray, radius: float, step: float, reach: float = 1.35):
    """Front cap of a sphere facing +z: points [n, n, 3] and unit directions [n, n, 3]."""
    n = int(np.ceil(2 * reach * radius / step)) + 1
    a = np.linspace(-reach, reach, n)
    alpha, beta = np.meshgrid(a, a)  # azimuth (columns), elevation (rows, upwards)
    d = np.stack([np.sin(alpha) * np.cos(beta), np.sin(beta), np.cos(alpha) * np.cos(beta)], -1)
    return centre + radius * d, d


def _neck(step: float, width: float):
    """An elliptic cylinder under the head: points and outward normals [H, W, 3]."""
    phi = np.linspace(-1.9, 1.9, int(np.ceil(3.8 * 0.18 / step)) + 1)
    y = np.linspace(-1.1, -0.3, int(np.ceil(0.8 / step)) + 1)
    P, Yg = np.meshgrid(phi, y)
    rx, rz = 0.215 * width, 0.19
    points = np.stack([rx * np.sin(P), Yg, -0.06 + rz * np.cos(P)], -1)
    normals = np.stack([np.sin(P) / rx, np.zeros_like(P), np.cos(P) / rz], -1)
    return points, normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def _surface_depth(X: np.ndarray, Y: np.ndarray, z: np.ndarray, front: np.ndarray,
                   qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """z of the head grid (X, Y, z [Nv, Nu]; front: columns facing forward) at material
    points (qx, qy) [H, W]: nearest grid row in Y, linear in X along it."""
    rows = np.abs(Y[:, :1] - qy[:, 0][None, :]).argmin(0)  # Y depends on the row only
    return np.stack([np.interp(qx[i], X[r][front[r]], z[r][front[r]])
                     for i, r in enumerate(rows)])


def _eye_domes(X: np.ndarray, Y: np.ndarray, z: np.ndarray, zf: np.ndarray, lay: hd.Layout
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lids wrapped over the eyeballs: zf raised to a smooth maximum with each eyeball's
    dome (plus the lid thickness); returns it and the two eyeball centres [3]."""
    centres = []
    for side in (-1.0, 1.0):
        # the eyeball sits just behind the socket surface at the eye centre
        at = np.argmin((X - side * lay.eye_x) ** 2 + (Y - lay.eye_y) ** 2 + 10.0 * (z < 0))
        centre = np.array([side * lay.eye_x, lay.eye_y, zf.flat[at] - lay.eye_r + 0.003])
        d2 = (X - centre[0]) ** 2 + (Y - centre[1]) ** 2
        inside = d2 < lay.eye_r ** 2
        dome = np.where(inside, centre[2] + np.sqrt(np.where(inside, lay.eye_r ** 2 - d2, 0.0)),
                        -np.inf) + hd.EYELID_THICKNESS
        softness = 0.003
        zf = softness * np.logaddexp(zf / softness, dome / softness)
        centres.append(centre)
    return zf, centres


def _mouth_cavity(X, Y, U, zf, lay: hd.Layout, shape: np.ndarray, spacing: float):
    """A curved dark wall behind the lips (teeth painted on it), warped like the head:
    points [H, W, 3] and material X, Y [H, W]."""
    ix = np.arange(-(lay.mouth_w + 0.04), lay.mouth_w + 0.04 + 1e-9, spacing)
    iy = np.arange(lay.mouth_y - 0.1, lay.mouth_y + 0.035 + 1e-9, spacing)
    IX, IY = np.meshgrid(ix, iy)
    # always behind the skin above it, and curving back away from the lip line
    iz = (_surface_depth(X, Y, zf, np.abs(U) < np.pi / 2, IX, IY) - 0.035
          - 2.0 * (IY - lay.mouth_y) ** 2)
    points = hd.identity_warp(np.stack([IX, IY, iz], -1), IX, IY, shape, np.ones_like(IX))
    return points, IX, IY


def build_mesh(shape: np.ndarray, look: np.ndarray, key: int, spacing: float) -> PersonMesh:
    """The mesh of one person (shape [S], look [L], texture seed ``key``) with grid points
    about ``spacing`` face units apart."""
    f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    rng = np.random.default_rng(np.random.SeedSequence([int(key), 0x7E47]))
    lay = hd.person_layout(shape, look)
    u, v = hd.head_grid(round(spacing, 6))
    U, V = np.meshgrid(u, v)
    x, y, z = hd.base_point(U, V)
    X, Y = x, y  # material coordinates: the base point's frontal position
    semi_y = np.where(V >= 0, hd.HEAD_B_TOP, hd.HEAD_B_BOTTOM)
    gradient = np.stack([x / hd.HEAD_A ** 2, y / semi_y ** 2, z / hd.HEAD_C ** 2], -1)
    fallback = gradient / np.linalg.norm(gradient, axis=-1, keepdims=True)
    base_normals = hd.grid_normals(np.stack([x, y, z], -1), fallback)
    front = hd.smoothstep(0.15, 0.45, z / hd.HEAD_C)

    zf, centres = _eye_domes(X, Y, z, z + hd.feature_relief(X, Y, lay, shape) * front, lay)
    hair = hd.hair_mask(U, Y, lay, look)
    ear = hd.ear_relief(U, Y, lay, shape)
    # ears and hair push the surface out along the base normal; smoothed, so that hair
    # edges are slopes rather than cliffs that the grid points cannot cover
    lift = cv2.GaussianBlur(hd.scalp_lift(U, Y, hair, ear, look).astype(np.float32), (0, 0),
                            0.012 / spacing)
    points = np.stack([x, y, zf], -1) + lift[..., None] * base_normals
    # float32 before the normals, so that a frame re-deriving them where nothing moved
    # gets the very same bits
    points = hd.identity_warp(points, X, Y, shape, front).astype(np.float32)
    fallback = fallback.astype(np.float32)
    normals = hd.grid_normals(points, fallback)
    upper, lower, profile = lay.lid_edges(X)
    kept = ~((profile > 0) & (Y < upper) & (Y > lower) & (front > 0.5)).reshape(-1)
    albedo, spec = head_albedo(X, Y, U, hair, np.clip(ear / 0.035, 0, 1), lay, look, rng)
    fields = action_fields(X, Y, points, lay)
    boxes, crops = _crop_fields(fields)
    shadows = tuple(None if box is None else f32(crease_shadow(
        fields[k, box[0]:box[1], box[2]:box[3]], normals[box[0]:box[1], box[2]:box[3]], spacing))
        for k, box in enumerate(boxes))

    cavity, IX, IY = _mouth_cavity(X, Y, U, zf, lay, shape, spacing)
    # eyeballs: rigid, the gaze a little off straight ahead
    gaze = np.array([0.25 * (float(look[LOOK["gaze_x"]]) - 0.5),
                     0.15 * (float(look[LOOK["gaze_y"]]) - 0.5), 1.0])
    gaze /= np.linalg.norm(gaze)
    eye_points, eye_dirs, eye_albedo = [], [], []
    for centre in centres:
        warped = hd.identity_warp(centre, centre[0], centre[1], shape, 1.0)
        p, d = _sphere_patch(warped, lay.eye_r, spacing / 1.5)
        eye_points.append(p.reshape(-1, 3))
        eye_dirs.append(d.reshape(-1, 3))
        eye_albedo.append(eyeball_albedo(d.reshape(-1, 3), gaze, lay.eye_r, look, rng))
    eyes = np.concatenate(eye_points)
    neck, neck_normals = _neck(spacing * 1.15, 1.0 + 0.04 * float(shape[SHAPE["face_width"]]))
    skin = float(np.median(albedo[(hair < 0.01) & (front > 0.5)]))

    start, count = int(kept.sum()), IX.size
    parts = (points.reshape(-1, 3)[kept], cavity.reshape(-1, 3), eyes, neck.reshape(-1, 3))
    part_normals = (normals.reshape(-1, 3)[kept], hd.grid_normals(cavity).reshape(-1, 3),
                    np.concatenate(eye_dirs), neck_normals.reshape(-1, 3))
    part_albedo = (albedo.reshape(-1)[kept], interior_albedo(IX, IY, lay).reshape(-1),
                   np.concatenate(eye_albedo), np.full(neck.shape[0] * neck.shape[1], 0.94 * skin))
    part_spec = (spec.reshape(-1)[kept], np.full(count, 0.15), np.full(len(eyes), 0.8),
                 np.full(len(part_albedo[3]), 0.08))
    part_shine = (np.full(start + count, SKIN_SHINE), np.full(len(eyes), EYE_SHINE),
                  np.full(len(part_albedo[3]), SKIN_SHINE))
    return PersonMesh(
        points=f32(np.concatenate(parts)), normals=f32(np.concatenate(part_normals)),
        albedo=f32(np.concatenate(part_albedo)), spec=f32(np.concatenate(part_spec)),
        shine=f32(np.concatenate(part_shine)), head=f32(points), head_fallback=fallback,
        head_index=np.where(kept, np.cumsum(kept) - 1, -1).reshape(X.shape).astype(np.int32),
        au_boxes=boxes, au_fields=tuple(None if c is None else f32(c) for c in crops),
        au_shadows=shadows,
        interior=(start, start + count),
        interior_fields=f32(interior_fields(IX, IY, cavity, lay).reshape(NUM_AUS, -1, 3)),
        shape=np.asarray(shape), look=np.asarray(look))


class MeshCache:
    """A small thread-safe LRU of built meshes, keyed by the person's rows and spacing."""

    def __init__(self, capacity: int = 40):
        self.capacity = capacity
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, shape: np.ndarray, look: np.ndarray, key: int, spacing: float) -> PersonMesh:
        ident = (int(key), shape.tobytes(), look.tobytes(), round(spacing, 6))
        with self._lock:
            if ident in self._items:
                self._items.move_to_end(ident)
                return self._items[ident]
        mesh = build_mesh(shape, look, key, spacing)
        with self._lock:
            self._items[ident] = mesh
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return mesh
