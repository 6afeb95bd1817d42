"""WarpFaces: a held-out face renderer whose actions are image warps.

Face model. A person is a set of proportions in eye-mouth units (``people.py``) from
which a neutral, photo-like grayscale image of the head is painted once per (person,
light) on a canvas in face coordinates (``appearance.py``, ``features.py``): skin albedo
with blotches and pores lit through the normals of a smooth relief (sockets, nose,
cheekbones, lips, chin), eyes with lids, lashes, sclera, iris, pupil and catchlight,
brows of many short hair strokes, nostrils and alar creases, lips with a cupid's bow and
a mouth line, hair with strands, ears, neck and clothes, in front of a textured and
sometimes cluttered background (``background.py``).

Actions. An action unit is a smooth displacement field (Gaussian bumps at the person's
keypoints) plus small wrinkle shading (``actions.py``); the frame is a backward warp of
the neutral canvas (``renderer.py``), so the skin texture itself moves. The eyeballs
stay behind the moving lids, and the lips part by warping their two sides apart over a
dark mouth interior with teeth.

How it differs from SynthFACS. SynthFACS paints 2D analytic shapes (signed-distance
ellipses and curves) with flat shading, moves its landmarks additively and re-draws the
shapes, with centred faces at one scale and in-plane rotation only. WarpFaces shares no
code with it: its own keypoint layout and person parameters, textured and relief-lit
appearance, actions as image warps of one neutral image, and framing that places faces
off-centre, at 50-90 % of the frame height, rolled up to ~15 degrees and sometimes
cropped by the frame edge. It is a validation renderer: nothing trains on it.
"""

from data_pipelines.synthetic.warpfaces.actions import AU_BUMPS
from data_pipelines.synthetic.warpfaces.people import (
    KEYPOINT_NAMES, People, keypoints, sample_people)
from data_pipelines.synthetic.warpfaces.renderer import (
    MIN_SIZE, WARPFACES, WarpFacesRenderer, face_to_frame, keypoints_px, render_faces)
from data_pipelines.synthetic.warpfaces.scenes import (
    DATASET_STYLES, Scenes, clean_scenes, sample_scenes)

__all__ = [
    "AU_BUMPS", "DATASET_STYLES", "KEYPOINT_NAMES", "MIN_SIZE", "People", "Scenes",
    "WARPFACES", "WarpFacesRenderer", "clean_scenes", "face_to_frame", "keypoints",
    "keypoints_px", "render_faces", "sample_people", "sample_scenes",
]
