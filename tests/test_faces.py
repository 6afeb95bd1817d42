"""Face crop: one box per clip from the onset frame, gray, resize, reported fallback."""

import cv2
import numpy as np
import pytest

from data_pipelines import faces


def frames_with_face(num_frames=3, height=60, width=80, box=(30, 10, 20, 24)):
    """Noise frames (uint8 [T, H, W]) with a bright rectangle where the 'face' is."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, size=(num_frames, height, width), dtype=np.uint8)
    x, y, w, h = box
    frames[:, y:y + h, x:x + w] += 150
    return frames


class RecordingDetector:
    """A fake detector that returns fixed boxes and remembers which frames it saw."""

    def __init__(self, boxes):
        self.boxes = boxes
        self.calls = []

    def __call__(self, gray):
        self.calls.append(gray.copy())
        return list(self.boxes)


def test_one_box_from_the_onset_applied_to_every_frame():
    frames = frames_with_face()
    detector = RecordingDetector([(30, 10, 20, 24), (0, 0, 4, 4)])
    cropped, info = faces.crop_clip(list(frames), image_size=16, detector=detector)
    assert len(detector.calls) == 1 and np.array_equal(detector.calls[0], frames[0])
    assert not info.fallback and info.method == "detector"
    # Largest box, grown by the margin into a square, centred on the detected box.
    x, y, w, h = info.box
    assert w == h == round(24 * (1 + 2 * faces.DEFAULT_MARGIN))
    assert abs((x + w / 2) - 40) <= 0.5 and abs((y + h / 2) - 22) <= 0.5
    assert cropped.shape == (3, 16, 16, 1) and cropped.dtype == np.uint8
    for frame, out in zip(frames, cropped):
        expected = cv2.resize(frame[y:y + h, x:x + w], (16, 16), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(out[..., 0], expected)


def test_no_face_falls_back_to_the_centre_square_and_says_so():
    frames = frames_with_face()
    cropped, info = faces.crop_clip(list(frames), image_size=16, detector=RecordingDetector([]))
    assert info.fallback and info.method == "center_fallback"
    assert info.box == (10, 0, 60, 60)
    expected = cv2.resize(frames[1][0:60, 10:70], (16, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(cropped[1, ..., 0], expected)


def test_trusted_frames_are_resized_whole_and_rgb_becomes_gray():
    rgb = np.zeros((2, 20, 20, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    cropped, info = faces.crop_clip(list(rgb), image_size=8, detector=None)
    assert info.method == "trusted" and not info.fallback
    assert cropped.shape == (2, 8, 8, 1)
    assert int(cropped[0, 0, 0, 0]) == int(cv2.cvtColor(rgb[0], cv2.COLOR_RGB2GRAY)[0, 0]) == 76


def test_square_box_stays_inside_the_frame():
    box = faces.square_box((70, 50, 20, 10), (60, 80), margin=0.5)
    x, y, w, h = box
    assert w == h == 40 and x + w <= 80 and y + h <= 60 and x >= 0 and y >= 0
    # A box larger than the frame becomes the largest square, pushed back inside.
    assert faces.square_box((0, 0, 200, 200), (60, 80)) == (20, 0, 60, 60)


def test_frames_of_another_size_than_the_onset_are_an_error():
    frames = [np.zeros((40, 40), np.uint8), np.zeros((20, 20), np.uint8)]
    with pytest.raises(ValueError, match="smaller than the clip's box"):
        faces.crop_clip(frames, image_size=8, detector=RecordingDetector([(0, 0, 40, 40)]))


def test_read_gray_errors_name_the_file(tmp_path):
    with pytest.raises(faces.ImageReadError, match=r"missing\.jpg: image file not found"):
        faces.read_gray(tmp_path / "missing.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(faces.ImageReadError, match=r"broken\.jpg: unreadable image"):
        faces.read_gray(broken)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((5, 7, 3), 100, np.uint8))
    assert faces.read_gray(good).shape == (5, 7)


def test_haar_detector_is_available_or_says_why_not():
    """OpenCV 4.x ships the cascade; OpenCV 5.0 removed it and the error must say what to do."""
    if hasattr(cv2, "CascadeClassifier"):
        detect = faces.make_detector("haar")
        assert detect(np.zeros((64, 64), np.uint8)) == []
    else:
        with pytest.raises(faces.FaceDetectorUnavailable, match="--trust-cropped"):
            faces.make_detector("haar")


def test_detector_spec_errors():
    with pytest.raises(ValueError, match="expected 'haar'"):
        faces.make_detector("dlib")
    with pytest.raises(faces.FaceDetectorUnavailable, match="not found"):
        faces.make_detector("yunet:/nonexistent/model.onnx")


def synthfacs_in_a_larger_frame(num=2):
    """SynthFACS faces (128 px) pasted at x=100, y=60 into 320x256 gray frames, like raw video."""
    from data_pipelines import synthetic

    identities = synthetic.sample_identities(0, num)
    au = np.zeros((num, len(synthetic.AU_NAMES)), np.float32)
    face_images = np.asarray(synthetic.render_faces(identities, au, size=128))[..., 0]
    frames = np.full((num, 256, 320), 90, np.uint8)
    frames[:, 60:188, 100:228] = np.rint(face_images * 255).astype(np.uint8)
    return frames


@pytest.mark.skipif(not hasattr(cv2, "CascadeClassifier"),
                    reason="OpenCV 5 has no Haar cascades (see test_haar_detector_is_available_or_says_why_not)")
def test_haar_finds_a_synthfacs_face_in_a_larger_frame():
    frames = synthfacs_in_a_larger_frame()
    info = faces.clip_box(frames[0], faces.make_detector("haar"))
    x, y, w, h = info.box
    assert not info.fallback and info.method == "detector"
    assert abs(x + w / 2 - 164) < 12 and abs(y + h / 2 - 124) < 12  # the face's centre
    assert 80 < w < 170
