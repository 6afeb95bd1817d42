"""Workdirs, dataset builds, clip shards, token caches and reports on ``gs://``, against the
fake bucket of ``tests/fake_gcs.py``.

How real the bucket is: every ``gs://`` path goes through the clients a pod uses, and all
of them land in one private folder with object-store semantics (flat names, whole-object
writes, no append, rename = copy + delete). Python IO (our code, Orbax's directories and
markers, Grain's iterator state, TFDS) goes through ``etils.epath`` to fsspec's ``gs``
protocol (the fake filesystem stands in for gcsfs); Orbax's arrays go through tensorstore's
real ``gcs`` driver and ArrayRecord reads through riegeli's real ``GcsReader``, both sent to
the fake's JSON API on 127.0.0.1. Not reproduced: gcsfs itself, authentication, latency,
retries, listing delays, and Orbax's question whether a bucket has a hierarchical namespace
(answered "no").

Each test runs in a private working directory and ``TMPDIR`` and checks that both are
empty afterwards: nothing is written outside the bucket (local staging folders are removed).
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

import fake_gcs
from data_pipelines import storage
from data_pipelines.talking_faces import shards
from dface_jax import cli
from dface_jax.configs import load_config
from dface_jax.runtime import checkpoint as checkpoint_lib
from dface_jax.runtime import lock
from dface_jax.runtime.metrics_log import read_metrics
from dface_jax.tokens import cache as cache_lib

REPO = pathlib.Path(__file__).resolve().parent.parent
BUCKET = "gs://test-bucket"
LABELS = ("negative", "positive", "surprise")


def _files(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """The fake bucket (its folder is returned), a private cwd and TMPDIR that must stay empty."""
    root, cwd, scratch = tmp_path / "buckets", tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(lock, "OBJECT_STORE_SETTLE_SECONDS", 0.05)
    with fake_gcs.fake_gcs(root):
        yield root
    assert _files(cwd) == [], "written outside the bucket (cwd)"
    assert _files(scratch) == [], "local staging left behind (TMPDIR)"


def _objects(root: pathlib.Path, prefix: str = "") -> list[str]:
    return fake_gcs.ObjectStore(root).names("test-bucket", prefix)


def _record_uploads(monkeypatch) -> list[str]:
    """Names of the objects written from now on, in order."""
    uploads = []
    put = fake_gcs.ObjectStore.put

    def recording(self, bucket, name, data):
        uploads.append(name)
        return put(self, bucket, name, data)

    monkeypatch.setattr(fake_gcs.ObjectStore, "put", recording)
    return uploads


def _clips(count=5, frames=6, size=8):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (frames, size, size, 1), dtype=np.uint8) for _ in range(count)]


def test_clip_shards_upload_with_metadata_last_and_read_back_through_arrayrecord(
        bucket, tmp_path, monkeypatch):
    uploads = _record_uploads(monkeypatch)
    written = shards.write_clip_shards(_clips(), f"{BUCKET}/shards", clips_per_shard=2)
    assert [str(p) for p in written] == [f"{BUCKET}/shards/clips-0000{i}-of-00003.array_record"
                                         for i in range(3)]
    assert uploads[-1] == "shards/metadata.json" and len(uploads) == 4
    # ArrayRecord's C++ reader (riegeli GcsReader) reads the objects from the bucket.
    source = shards.clip_source(f"{BUCKET}/shards")
    for index, clip in enumerate(_clips()):
        np.testing.assert_array_equal(shards.decode_clip(source[index]), clip)
    # The same pair batches as from a local copy of the same clips.
    shards.write_clip_shards(_clips(), tmp_path / "local", clips_per_shard=2)
    settings = dict(seed=3, min_gap=1, max_gap=3, batch_size=2)
    remote = iter(shards.pair_dataset(f"{BUCKET}/shards", **settings))
    local = iter(shards.pair_dataset(tmp_path / "local", **settings))
    for _ in range(3):
        jax.tree.map(np.testing.assert_array_equal, next(remote), next(local))


def test_a_killed_shard_upload_is_not_taken_for_shards_and_is_cleared(bucket, monkeypatch):
    clips = _clips()
    real_copy = storage.copy_tree

    def killed(source, target, last=()):
        (storage.as_path(target) / "clips-00000-of-00003.array_record").write_bytes(b"torn")
        raise KeyboardInterrupt  # the job dies during the upload, before metadata.json

    monkeypatch.setattr(storage, "copy_tree", killed)
    with pytest.raises(KeyboardInterrupt):
        shards.write_clip_shards(clips, f"{BUCKET}/shards", clips_per_shard=2)
    with pytest.raises(FileNotFoundError, match="metadata.json not found"):
        shards.read_metadata(f"{BUCKET}/shards")
    monkeypatch.setattr(storage, "copy_tree", real_copy)
    shards.write_clip_shards(clips, f"{BUCKET}/shards", clips_per_shard=2)
    assert shards.read_metadata(f"{BUCKET}/shards")["num_clips"] == 5
    source = shards.clip_source(f"{BUCKET}/shards")
    np.testing.assert_array_equal(shards.decode_clip(source[0]), clips[0])


def test_strict_json_and_whole_objects_without_temporary_names(bucket):
    storage.write_json(f"{BUCKET}/run/results.json", {"uf1": float("nan")})
    assert storage.read_json(f"{BUCKET}/run/results.json") == {"uf1": "nan"}
    assert _objects(bucket) == ["run/results.json"]  # one upload, no temporary object
    assert storage.absolute(f"{BUCKET}/run") == f"{BUCKET}/run"


def test_the_object_store_lock_is_a_lease(bucket, monkeypatch):
    path = f"{BUCKET}/run/{lock.LOCK_FILE}"
    monkeypatch.setattr(lock, "LEASE_SECONDS", 0.4)
    with lock.hold(f"{BUCKET}/run", "loso"):
        holder = storage.read_json(path)
        assert holder["pid"] == os.getpid() and holder["command"] == "loso"
        with pytest.raises(lock.WorkdirLockedError, match=f"{BUCKET}/run is in use by"):
            with lock.hold(f"{BUCKET}/run", "pretrain"):
                pass
        time.sleep(0.5)  # renewed while held: still refused after a whole lease
        assert storage.read_json(path)["renewed"] > holder["renewed"]
        with pytest.raises(lock.WorkdirLockedError):
            with lock.hold(f"{BUCKET}/run", "pretrain"):
                pass
    assert _objects(bucket, "run/") == []  # released: the lock object is deleted
    # A preempted slice's lock (other host, not renewed for a lease) is taken over.
    storage.write_json(path, {"pid": 1, "host": "gone-host", "command": "pretrain",
                              "token": "x", "renewed": time.time() - 1.0})
    with lock.hold(f"{BUCKET}/run", "pretrain"):
        assert storage.read_json(path)["pid"] == os.getpid()


def test_a_replaced_checkpoint_step_survives_a_kill_on_object_storage(bucket, monkeypatch):
    workdir = f"{BUCKET}/run"
    first, second, third = ({"w": np.full(3, v, np.float32)} for v in (1.0, 2.0, 3.0))
    checkpoint_lib.save_params(workdir, first)
    step = f"run/{checkpoint_lib.CHECKPOINT_DIR}/0/"
    assert f"{step}{checkpoint_lib.COMMIT_FILE}" in _objects(bucket)  # Orbax's gs:// marker
    real_copy = storage.copy_tree

    def killed(source, target, last=()):
        raise KeyboardInterrupt  # dies after the old step was uncommitted and removed

    monkeypatch.setattr(storage, "copy_tree", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_lib.save_params(workdir, second)
    assert not [n for n in _objects(bucket) if n.startswith(step)]
    monkeypatch.setattr(storage, "copy_tree", real_copy)
    # A reader completes the replacement from the finished staged step.
    np.testing.assert_array_equal(checkpoint_lib.restore_params(workdir)["w"], second["w"])
    assert not _objects(bucket, f"run/{checkpoint_lib.STAGING_DIR}/")
    checkpoint_lib.save_params(workdir, third)
    np.testing.assert_array_equal(checkpoint_lib.restore_params(workdir)["w"], third["w"])
    assert checkpoint_lib.latest_step(workdir) == 0


def _tiny_pretrain_config(*overrides):
    return load_config("pretrain_synthetic.py:tiny", [
        "--config.train.num_steps=8", "--config.train.checkpoint_every=4",
        "--config.train.log_every=2", "--config.train.keep_checkpoints=5",
        "--config.data.num_clips=32", "--config.data.clips_per_shard=16", *overrides])


def test_pretraining_on_a_bucket_resumes_to_the_uninterrupted_result(bucket):
    from dface_jax.pretrain import loop
    from dface_jax.workdir import read_manifest

    config = _tiny_pretrain_config()
    whole = jax.device_get(loop.run_pretraining(config, f"{BUCKET}/whole", progress=False))
    names = _objects(bucket, "whole/")
    assert "whole/data/metadata.json" in names and "whole/completed.json" in names
    assert not [n for n in names if "tensorboard" in n]  # local workdirs only
    assert read_manifest(f"{BUCKET}/whole")["inputs"]["clip_shards"] == f"{BUCKET}/whole/data"
    # Killed after its step-4 checkpoint: the copy lacks step 8 and the completion marker.
    storage.copy_tree(f"{BUCKET}/whole", f"{BUCKET}/killed")
    store = fake_gcs.ObjectStore(bucket)
    for name in _objects(bucket, "killed/checkpoints/8/") + ["killed/completed.json"]:
        store.delete("test-bucket", name)
    assert checkpoint_lib.latest_step(f"{BUCKET}/killed") == 4
    resumed = jax.device_get(loop.run_pretraining(config, f"{BUCKET}/killed", progress=False))
    jax.tree.map(np.testing.assert_array_equal, resumed["params"], whole["params"])
    assert [r["step"] for r in read_metrics(f"{BUCKET}/killed")] == [2, 4, 6, 8]


def test_loso_and_report_on_a_bucket_match_a_local_run(bucket, tmp_path):
    rng = np.random.default_rng(0)
    subjects = [f"casme2/s{i % 4}" for i in range(24)]
    cache = cache_lib.synthetic_token_cache(rng.integers(0, 3, 24), subjects, ["casme2"] * 24,
                                            LABELS, vector_dim=8)
    cache_lib.save_token_cache(f"{BUCKET}/tokens.npz", cache)
    cache_lib.save_token_cache(tmp_path / "tokens.npz", cache)
    command = ["loso", "--config", "loso_composite.py:tiny", "--config.train.epochs=2"]
    assert cli.main([*command, "--tokens", f"{BUCKET}/tokens.npz", "--workdir",
                     f"{BUCKET}/loso"]) == 0
    assert cli.main([*command, "--tokens", str(tmp_path / "tokens.npz"), "--workdir",
                     str(tmp_path / "loso")]) == 0
    remote = storage.read_json(f"{BUCKET}/loso/results.json")
    local = json.loads((tmp_path / "loso" / "results.json").read_text())
    assert remote.pop("train_seconds") > 0 and local.pop("train_seconds") > 0
    assert remote == local
    jax.tree.map(np.testing.assert_array_equal, checkpoint_lib.restore_params(f"{BUCKET}/loso"),
                 checkpoint_lib.restore_params(tmp_path / "loso"))
    assert cli.main(["report", "--workdir", f"{BUCKET}/loso"]) == 0
    index = storage.as_path(f"{BUCKET}/loso/report/index.html").read_text()
    assert "<img src='confusion_matrices.png'" in index
    assert "loso/report/confusion_matrices.png" in _objects(bucket, "loso/report/")


# --------------------------------------------------------------------------- the commands

RUNNER = ("import sys; sys.path.insert(0, {tests!r}); import fake_gcs; fake_gcs.register(); "
          "from dface_jax.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.slow
def test_the_commands_on_gs_paths_write_only_to_the_bucket(tmp_path):
    """prepare, pretrain (SIGKILLed after a checkpoint and run again), extract-tokens, loso
    and report as a pod runs them, each a `dface-jax` process whose every path is gs://; the
    process's HOME, cwd and TMPDIR stay empty and the resumed pretraining ends with the
    parameters of an uninterrupted one."""
    from data_pipelines.me.layouts import write_layout
    from data_pipelines.synthetic import me_clips

    raw = tmp_path / "raw"  # raw frames are read by OpenCV: they stay local
    clips = [c for c in me_clips(preset="composite", size=32, seed=0) if c.dataset == "casme2"][:12]
    write_layout(clips, "casme2", raw)
    root, home, cwd, scratch = (tmp_path / name for name in ("buckets", "home", "cwd", "tmp"))
    for folder in (home, cwd, scratch):
        folder.mkdir()
    store = fake_gcs.ObjectStore(root)
    with fake_gcs.FakeGCSServer(store) as server:
        env = {**os.environ, **fake_gcs.environment(root, server.url), "JAX_PLATFORMS": "cpu",
               "HOME": str(home), "TMPDIR": str(scratch), "MPLCONFIGDIR": str(tmp_path / "mpl"),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

        def command(*args, **kwargs):
            argv = [sys.executable, "-c", RUNNER.format(tests=str(REPO / "tests")), *args]
            return subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, **kwargs)

        def run(*args):
            process = command(*args)
            output, _ = process.communicate(timeout=900)
            assert process.returncode == 0, output
            return output

        run("prepare", "--dataset", "casme2", "--manual-dir", str(raw), "--data-dir",
            f"{BUCKET}/data", "--image-size", "32", "--trust-cropped")
        pretrain = ["pretrain", "--config", "pretrain_synthetic.py:tiny", "--no-progress",
                    "--config.train.num_steps=12", "--config.train.checkpoint_every=4",
                    "--config.train.keep_checkpoints=5",
                    "--config.data.num_clips=32", "--config.data.clips_per_shard=16",
                    f"--config.data.dir={BUCKET}/shards"]
        run(*pretrain, "--workdir", f"{BUCKET}/whole")
        killed = command(*pretrain, "--workdir", f"{BUCKET}/killed")
        deadline = time.time() + 600
        while store.generation("test-bucket", "killed/checkpoints/4/commit_success.txt") is None:
            assert killed.poll() is None, killed.communicate()[0]
            assert time.time() < deadline, "no checkpoint within 600 s"
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.communicate()
        assert store.generation("test-bucket", "killed/checkpoints/12/commit_success.txt") is None, \
            "killed too late to test a resume"
        run(*pretrain, "--workdir", f"{BUCKET}/killed")
        run("extract-tokens", "--tokenizer", f"{BUCKET}/whole", "--data-dir", f"{BUCKET}/data",
            "--dataset", "casme2", "--out", f"{BUCKET}/tokens.npz", "--batch-size", "4")
        run("loso", "--config", "loso_composite.py:tiny", "--config.train.epochs=2",
            "--tokens", f"{BUCKET}/tokens.npz", "--workdir", f"{BUCKET}/loso")
        run("report", "--workdir", f"{BUCKET}/loso")

        with fake_gcs.fake_gcs(root):
            jax.tree.map(np.testing.assert_array_equal,
                         checkpoint_lib.restore_params(f"{BUCKET}/killed"),
                         checkpoint_lib.restore_params(f"{BUCKET}/whole"))
            tokens = cache_lib.load_token_cache(f"{BUCKET}/tokens.npz")
            assert tokens["action_tokens"].shape == (len(clips), 16)
            assert str(tokens["tokenizer_workdir"]) == f"{BUCKET}/whole"
            assert str(tokens["dataset_build"]).startswith(f"{BUCKET}/data/casme2/")
            assert storage.read_json(f"{BUCKET}/loso/results.json")["num_clips"] == len(clips)
    names = store.names("test-bucket")
    assert "loso/report/index.html" in names and "killed/completed.json" in names
    assert [n for n in names if n.startswith("data/casme2/") and n.endswith("dataset_info.json")]
    assert store.buckets() == ["test-bucket"]
    assert (_files(home), _files(cwd)) == ([], [])
    # TFDS's DatasetInfo.initialize_from_bucket makes an empty mkdtemp("tfds") folder in
    # every new builder and never removes it (local builds too); nothing else may be there.
    assert all(name.endswith("tfds") and not any((scratch / name).iterdir())
               for name in _files(scratch)), _files(scratch)
