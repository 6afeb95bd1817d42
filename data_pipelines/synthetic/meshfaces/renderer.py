"""MeshFaces as a :class:`~data_pipelines.synthetic.me_sets.FaceRenderer`.

``render`` poses each row's mesh (neutral head + the row's action blendshapes) in its
scene, shades it, splats it at twice the output size over the scene's background and
shoulders, then applies exposure, blur, a 2 x 2 area downsample and sensor noise. Row
r's random draws (head jitter, noise) come from the stream (seed, r) alone, so the same
people, scenes and seed give the same nuisance whatever the action intensities.
"""

from __future__ import annotations

import concurrent.futures
import os

import cv2
import numpy as np

from data_pipelines.synthetic.facs import check_intensities
from data_pipelines.synthetic.meshfaces import head as hd
from data_pipelines.synthetic.meshfaces import raster
from data_pipelines.synthetic.meshfaces.mesh import CREASE_MAX, MeshCache, PersonMesh
from data_pipelines.synthetic.meshfaces.people import LOOK, SHAPE, People, sample_people
from data_pipelines.synthetic.meshfaces.scenes import (
    FIELD, Scenes, background, clean_scenes, sample_scenes)

MIN_SIZE = 16
_FRAME_SALT = 0x5A17
_WORKERS = min(2, os.cpu_count() or 1)
_CACHE = MeshCache()
_FILL = np.array([-0.6, 0.2, 0.77])  # fill light from the other side, normalised below
_FACE_CENTRE = np.array([0.0, hd.FACE_CENTRE_Y, 0.0])


def mesh_spacing(size: int) -> float:
    """Face units between neighbouring mesh points at output size ``size``: about 1.3 px
    at the 2x render resolution for the largest face a scene frames (80 % of the frame,
    nose magnified by perspective); bilinear splats cover gaps up to ~1.4 px."""
    return 1.3 / (2 * size)


def posed_mesh(mesh: PersonMesh, au: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Points [K, 3], unit normals [K, 3] and crease shadow [K] (None: none) of ``mesh``
    doing ``au`` [A] (model frame), in the order of ``mesh.albedo``. Zero intensities give
    the neutral mesh itself."""
    active = [k for k in np.flatnonzero(au) if mesh.au_boxes[k] is not None]
    if not active:
        return mesh.points, mesh.normals, None
    rows, cols = mesh.head.shape[:2]
    boxes = [mesh.au_boxes[k] for k in active]
    # the union of the moving boxes plus one row / column of margin for the normals
    r0, r1 = max(min(b[0] for b in boxes) - 1, 0), min(max(b[1] for b in boxes) + 1, rows)
    c0, c1 = max(min(b[2] for b in boxes) - 1, 0), min(max(b[3] for b in boxes) + 1, cols)
    grid = mesh.head[r0:r1, c0:c1].copy()
    shadow = np.zeros(grid.shape[:2], np.float32)
    for k, (b0, b1, b2, b3) in zip(active, boxes):
        grid[b0 - r0:b1 - r0, b2 - c0:b3 - c0] += au[k] * mesh.au_fields[k]
        shadow[b0 - r0:b1 - r0, b2 - c0:b3 - c0] += au[k] * mesh.au_shadows[k]
    local = hd.grid_normals(grid, mesh.head_fallback[r0:r1, c0:c1])
    # the margin keeps its neutral normals (its differences would need points outside the
    # box) unless it is the grid's own edge
    i0, j0 = (0 if r0 == 0 else 1), (0 if c0 == 0 else 1)
    i1, j1 = (r1 - r0) - (0 if r1 == rows else 1), (c1 - c0) - (0 if c1 == cols else 1)
    index = mesh.head_index[r0 + i0:r0 + i1, c0 + j0:c0 + j1].reshape(-1)
    inner = np.flatnonzero(index >= 0)  # grid cells of the box that are rendered points
    rows = index[inner]
    points, normals = mesh.points.copy(), mesh.normals.copy()
    points[rows] = grid[i0:i1, j0:j1].reshape(-1, 3)[inner]
    normals[rows] = local[i0:i1, j0:j1].reshape(-1, 3)[inner]
    darkening = np.zeros(len(points), np.float32)
    darkening[rows] = np.minimum(shadow[i0:i1, j0:j1].reshape(-1)[inner], CREASE_MAX)
    start, stop = mesh.interior
    points[start:stop] += np.tensordot(au[active], mesh.interior_fields[active], 1)
    return points, normals, darkening


def render_frame(mesh: PersonMesh, au: np.ndarray, scene: np.ndarray, backdrop: np.ndarray,
                 size: int, rng: np.random.Generator) -> np.ndarray:
    """One float32 [size, size] frame in [0, 1]: ``mesh`` doing ``au`` [A] in ``scene``
    [len(SCENE_FIELDS)] over ``backdrop`` [2 size, 2 size]; jitter and noise from ``rng``."""
    s = {name: float(scene[i]) for name, i in FIELD.items()}
    render_size = 2 * size
    jitter = rng.standard_normal(5)
    noise = rng.standard_normal((size, size), dtype=np.float32)
    shift = jitter[:2] * s["jitter_px"] / size
    turn = np.deg2rad(np.array([s["yaw"], s["pitch"], s["roll"]]) + jitter[2:] * s["jitter_deg"])
    camera = raster.make_camera(render_size, *turn, s["centre_x"] + shift[0],
                                s["centre_y"] + shift[1], s["face_height"],
                                s["distance"] * hd.FACE_HEIGHT, _FACE_CENTRE, hd.FACE_HEIGHT)
    key = raster.light_direction(np.deg2rad(s["light_azimuth"]), np.deg2rad(s["light_elevation"]))
    fill = _FILL * [np.sign(s["light_azimuth"]) or 1.0, 1.0, 1.0]
    fill = fill / np.linalg.norm(fill)

    points, normals, darkening = posed_mesh(mesh, au)
    eye = camera.eye_in_model().astype(np.float32)
    # back-face culling: (eye - p) . n > 0
    facing = np.flatnonzero(normals @ eye > np.einsum("ij,ij->i", points, normals))
    points, normals = points[facing], normals[facing]
    radiance = raster.shade(normals, mesh.albedo[facing], mesh.spec[facing],
                            mesh.shine[facing], camera, key, fill, s["light"], s["ambient"],
                            s["fill"], s["specular"])
    if darkening is not None:
        radiance *= 1.0 - darkening[facing]
    px, py, depth = camera.project(camera.to_camera(points))
    face, covered = raster.splat(px, py, depth, radiance, render_size)

    image = backdrop.copy()
    look = mesh.look
    raster.draw_torso(image, camera, 1.0 + 0.05 * float(mesh.shape[SHAPE["face_width"]]),
                      0.08 + 0.7 * float(look[LOOK["cloth_tone"]]),
                      float(look[LOOK["cloth_pattern"]]) > 0.65, key, s["light"], s["ambient"])
    image = np.where(covered, face, image) * s["gain"]
    if s["blur"] > 0:
        image = cv2.GaussianBlur(image, (0, 0), 2.0 * s["blur"])
    frame = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    if s["noise"] > 0:  # a little stronger in bright pixels, like shot noise
        frame += s["noise"] * (0.7 + 0.6 * frame) * noise
    return np.clip(frame, 0.0, 1.0)


def render_faces(people: People, au_intensities: np.ndarray, scenes: Scenes, *, size: int,
                 seed: int) -> np.ndarray:
    """float32 [N, size, size, 1] in [0, 1]: row r is ``people`` row r doing
    ``au_intensities`` [N, A] row r in ``scenes`` row r, nuisance drawn from (seed, r)."""
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"meshfaces render: size must be an integer >= {MIN_SIZE} pixels, "
                         f"got {size!r}")
    n = len(people)
    if len(scenes) != n:
        raise ValueError(f"meshfaces render: {n} people but {len(scenes)} scenes; give one "
                         "scene row per frame")
    au = check_intensities(au_intensities, n)
    size = int(size)
    spacing = mesh_spacing(size)

    # one mesh per distinct person (rows repeat people), built in parallel
    ident = [people.shape[r].tobytes() + people.look[r].tobytes() + people.key[r].tobytes()
             for r in range(n)]
    first = {}
    for r, key in enumerate(ident):
        first.setdefault(key, r)

    def build(r: int) -> PersonMesh:
        return _CACHE.get(people.shape[r], people.look[r], int(people.key[r]), spacing)

    backdrops: dict[tuple, np.ndarray] = {}
    out = np.empty((n, size, size, 1), np.float32)
    with concurrent.futures.ThreadPoolExecutor(_WORKERS) as pool:
        meshes = dict(zip(first, pool.map(build, first.values())))

        def backdrop(r: int) -> np.ndarray:
            v = scenes.values[r]
            key = (int(scenes.bg_seed[r]), *(float(v[FIELD[f]]) for f in
                                             ("bg_level", "bg_contrast", "bg_clutter", "bg_blur")))
            if key not in backdrops:  # frames of one clip share their scene's backdrop
                backdrops[key] = background(key[0], 2 * size, *key[1:4], key[4] * size / 32)
            return backdrops[key]

        def paint(rows: range) -> None:
            for r in rows:
                rng = np.random.default_rng(np.random.SeedSequence([int(seed), _FRAME_SALT, r]))
                out[r, ..., 0] = render_frame(meshes[ident[r]], au[r], scenes.values[r],
                                              backdrop(r), size, rng)

        chunk = 16
        list(pool.map(paint, [range(i, min(n, i + chunk)) for i in range(0, n, chunk)]))
    return out


class MeshFacesRenderer:
    """The MeshFaces face model and splatting renderer (held out: evaluation only)."""

    name = "meshfaces"
    seed_salt = 0x6D46

    def sample_people(self, seed: int, count: int) -> People:
        return sample_people(seed, count)

    def sample_scenes(self, rng: np.random.Generator, count: int, dataset: str | None) -> Scenes:
        return sample_scenes(rng, count, dataset)

    def clean_scenes(self, count: int) -> Scenes:
        return clean_scenes(count)

    def render(self, people: People, au_intensities: np.ndarray, scenes: Scenes, *, size: int,
               seed: int) -> np.ndarray:
        return render_faces(people, au_intensities, scenes, size=size, seed=seed)


MESHFACES = MeshFacesRenderer()
