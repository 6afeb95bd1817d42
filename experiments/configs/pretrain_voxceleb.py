"""Paper-scale tokenizer pretraining on VoxCeleb clip shards (the released model's shapes).

The data are the shards `dface-jax prepare-voxceleb` writes (256 px RGB face crops); pass
their directory with ``--config.data.dir=DIR``. The paper trains on about 1M pairs 8-15
frames apart for 800k steps; the batch size is not published: 256 (global) is our choice
for a TPU v4-32 / v5e-32 slice (experiments/launch/tpu_pod.sh). Every field left out is the
release's (``TokenizerConfig``, ``OptimizerConfig`` and ``DataConfig`` defaults). Not run at
scale here (no accelerators); the same code is tested on CPU with 8 forced devices and with
two processes.

Variant ``gpu1``: one GPU, global batch 32.
"""

import ml_collections

from data_pipelines.talking_faces.augment import PairAugment
from dface_jax.configs import section
from dface_jax.models.tokenizer import TokenizerConfig
from dface_jax.pretrain.data import DataConfig
from dface_jax.pretrain.evaluate import EvalConfig
from dface_jax.pretrain.step import OptimizerConfig

VARIANTS = (None, "gpu1")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"unknown pretrain_voxceleb variant {arg!r}; use one of {VARIANTS}")
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = section(DataConfig)  # data.dir is required: the VoxCeleb clip shards
    config.tokenizer = section(TokenizerConfig, dtype="bfloat16")
    config.train = section(OptimizerConfig)
    config.augment = section(PairAugment)
    config.eval = section(EvalConfig, micro_intensity=0.0, nuisance="clean", batch_size=32)
    if arg == "gpu1":
        config.train.batch_size = 32
        config.data.num_workers = 4
    return config
