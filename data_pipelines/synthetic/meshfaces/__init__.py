"""MeshFaces: a held-out 3D face renderer, used only to evaluate whether action tokens
learnt on SynthFACS generalise to faces the tokenizer never saw.

Face model (``head.py``, ``mesh.py``): a head surface sampled on an azimuth x elevation
grid — a superellipsoid with smooth 3D relief for the brow ridge, eye sockets, nose, cheeks,
lips and chin, ears and hair volume — warped by per-person shape modes (face width and
length, jaw taper, forehead slope, nose and lip sizes, eye spacing, a random bump). Eyeballs
are spheres behind holes in the lids; the mouth is a seam with a dark cavity and teeth
behind it. Appearance (``texture.py``) is an albedo map on the surface: skin tone with
multi-scale blotches and pores, freckles, moles, eyebrows and scalp hair as streaked
strands, lash lines, darker lips, stubble or beard, iris tone and gaze.

Actions (``actions.py``): each of the 16 FACS AUs is a smooth 3D displacement field of the
skin (x, y and z) placed on the person's own features; intensities add linearly
(blendshapes). Wrinkles and furrows are small relief in the same fields, so they appear
through the shading of the displaced surface.

Rendering (``raster.py``, ``renderer.py``, ``scenes.py``): perspective camera with yaw,
pitch and roll, off-centre framing at 45-80 % face height, Lambert + Blinn-Phong shading
under a directional key light, fill and ambient, z-buffered bilinear surface splatting at
twice the output size, downsampled; a textured backdrop with clutter and clothed
shoulders; dataset styles for SMIC, CASME II, SAMM and talking video.

Unlike SynthFACS (2D signed-distance shapes in a face-normalised frame, landmarks moved
additively in 2D, flat shading, in-plane rotation, centred at a fixed scale), nothing here
is 2D or shared with it: the geometry, the way actions deform it, the shading, the pose
and the framing are all independent.
"""

from data_pipelines.synthetic.meshfaces.people import (
    LOOK_FIELDS, SHAPE_FIELDS, People, sample_people)
from data_pipelines.synthetic.meshfaces.renderer import MESHFACES, MeshFacesRenderer, render_faces
from data_pipelines.synthetic.meshfaces.scenes import SCENE_FIELDS, STYLES, Scenes

__all__ = ["LOOK_FIELDS", "MESHFACES", "MeshFacesRenderer", "People", "SCENE_FIELDS",
           "SHAPE_FIELDS", "STYLES", "Scenes", "render_faces", "sample_people"]
