"""The identities x actions picture of SynthFACS (docs/images/synthfacs_grid.png)."""

from __future__ import annotations

import pathlib

import numpy as np

from data_pipelines.synthetic.facs import AU_NAMES, NUM_AUS
from data_pipelines.synthetic.synthfacs.face_model import sample_identities
from data_pipelines.synthetic.synthfacs.render import render_faces


def identity_action_grid(seed: int = 0, num_identities: int = 6, size: int = 128,
                         intensity: float = 1.0) -> tuple[np.ndarray, tuple[str, ...]]:
    """Faces of ``num_identities`` people (rows) x (neutral, each AU at ``intensity``) columns.

    Clean renders (no nuisance); the last row wears glasses.

    Returns the mosaic float32 [rows * size, columns * size] and the column titles.
    """
    identities = sample_identities(seed, num_identities)
    # the last person wears glasses, so the picture shows the accessory too
    identities = identities.replace(glasses=identities.glasses | (np.arange(num_identities)
                                                                   == num_identities - 1))
    columns = ("neutral",) + AU_NAMES
    au = np.zeros((len(columns), NUM_AUS), np.float32)
    au[np.arange(1, len(columns)), np.arange(NUM_AUS)] = intensity
    rows = np.repeat(np.arange(num_identities), len(columns))
    frames = render_faces(identities.take(rows), np.tile(au, (num_identities, 1)), size=size)
    mosaic = frames[..., 0].reshape(num_identities, len(columns), size, size)
    return mosaic.transpose(0, 2, 1, 3).reshape(num_identities * size, len(columns) * size), columns


def save_grid_png(path: str | pathlib.Path, *, seed: int = 0, num_identities: int = 6,
                  size: int = 128) -> pathlib.Path:
    """Writes the grid to ``path`` (a PNG) with a title row naming each column."""
    from PIL import Image, ImageDraw  # only this picture needs PIL

    mosaic, columns = identity_action_grid(seed, num_identities, size)
    header = 18
    canvas = Image.new("L", (mosaic.shape[1], mosaic.shape[0] + header), color=255)
    canvas.paste(Image.fromarray(np.round(mosaic * 255).astype(np.uint8)), (0, header))
    draw = ImageDraw.Draw(canvas)
    for k, title in enumerate(columns):
        draw.text((k * size + size // 2 - 3 * len(title), 3), title, fill=0)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
