"""LOSO on the composite set (CASME II + SMIC-HS + SAMM, 3 classes: negative, positive,
surprise; 68 subjects, 442 clips) from a token cache.

``dface-jax loso --config experiments/configs/loso_composite.py --tokens tokens.npz --workdir W``

Variants (``loso_composite.py:<arg>``):
  * none: the released D-FACE settings (``ClassifierConfig`` and ``LosoTrainConfig``
    defaults: dim 512, 2 layers, 8 heads, softmax pooling with the entropy penalty,
    EDCLIP weight 0.3, AdamW 2e-4, batch 16, 120 epochs). On a 2-core CPU a 68-fold sweep
    of this takes hours: it is the GPU/TPU setting, so its classifier computes its matmuls
    in bfloat16 (params float32; ``--config.classifier.dtype=float32`` is the release's
    precision, and what ``synth`` and ``tiny`` use on CPU, where bf16 is emulated).
  * ``synth``: the same method at CPU scale for SynthFACS (dim 32, 4 heads, FFN 64, 10
    epochs at lr 1e-3 because the schedule is short; pixel CNN 8/16/32 channels with a
    stride-2 first conv; OFF-ApexNet's dense layers 128 wide instead of 1024, for memory).
    Chosen so that ``compare``'s 21 sweeps (7 models x 3 seeds) fit in about an hour on a
    2-core CPU; not tuned to the results.
  * ``synth_cosine30``: ``synth`` with the learning rate decayed to 0 by a cosine over 30
    epochs: the schedule chosen on the WarpFaces validation renderer for a stable honest
    (final-epoch) score, 3x the cost of ``synth`` (docs/results/heldout_renderer.md).
  * ``tiny``: a few-second configuration for tests.
Ablations are overrides of one field: ``train.edclip_weight=0``, ``classifier.pooling=mean``,
``token_order=shuffled_per_clip``; the baselines are ``model=pixel``, ``model=ststnet`` and
``model=off_apexnet`` (each with ``train.edclip_weight=0``; the flow baselines need a
token cache with the optical flow, which ``extract-tokens`` writes).
"""

import ml_collections

from dface_jax.configs import section
from dface_jax.loso.step import LosoTrainConfig
from dface_jax.models.flow_baselines import OFFApexNetConfig, STSTNetConfig
from dface_jax.models.pixel_baseline import PixelBaselineConfig
from dface_jax.models.token_classifier import ClassifierConfig

VARIANTS = (None, "synth", "synth_cosine30", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"unknown loso_composite variant {arg!r}; use one of {VARIANTS}")
    config = ml_collections.ConfigDict()
    config.dataset = "composite"
    # "dface" (token Transformer), or a baseline CNN: "pixel", "ststnet", "off_apexnet"
    config.model = "dface"
    config.token_order = "original"        # or "shuffled_per_clip" (the order ablation)
    config.token_shuffle_seed = 0          # fixed across training seeds
    config.text_encoder_dir = ""           # local HF text model dir; "" = random, non-semantic
    config.text_random_width = 64          # width of the random text encoder when no dir
    config.prompt_set = ""                 # EDCLIP prompts: "" = edclip.EMOTION_PROMPTS by label
    # Joint fine-tuning of the tokenizer on each fold's training clips (the release keeps
    # training it with weight train.tokenizer_loss_weight = 0.1 on its reconstruction loss).
    # Needs a cache written with `extract-tokens --keep-frames`; the tokenizer runs in every
    # step of every fold, so this is a GPU/TPU setting.
    config.finetune_tokenizer = False
    config.tokenizer_workdir = ""          # "" = the tokenizer that wrote the token cache
    # num_classes, seq_len, input_dim and text_dim come from the token cache and the anchors.
    config.classifier = section(ClassifierConfig,
                                exclude=("num_classes", "seq_len", "input_dim", "text_dim"))
    config.pixel = section(PixelBaselineConfig, exclude=("num_classes",))
    config.ststnet = section(STSTNetConfig, exclude=("num_classes",))
    config.off_apexnet = section(OFFApexNetConfig, exclude=("num_classes",))
    config.train = section(LosoTrainConfig)
    config.compare = ml_collections.ConfigDict(dict(seeds=(0, 1, 2)))
    if arg is None:
        config.classifier.dtype = "bfloat16"
    if arg in ("synth", "synth_cosine30"):
        config.classifier.update(dim=32, heads=4, mlp_dim=64)
        config.pixel.update(features=(8, 16, 32), stem_stride=2)  # 4x fewer FLOPs
        # 68 folds train at once: 68 copies of OFF-ApexNet's 2.66 M parameters and their
        # AdamW moments (~3 GB) do not fit beside other jobs on the 2-core machine; 128-wide
        # dense layers hold 0.22 M. Its convolutions, and STSTNet, stay as published.
        config.off_apexnet.hidden = (128, 128)
        config.train.update(epochs=10, learning_rate=1e-3)
    if arg == "synth_cosine30":
        config.train.update(epochs=30, lr_schedule="cosine")
    elif arg == "tiny":
        config.classifier.update(dim=16, depth=1, heads=2, mlp_dim=32)
        config.pixel.features = (4, 8)
        config.off_apexnet.update(conv_features=(2, 4), hidden=(16,))
        config.train.update(epochs=2, batch_size=4)
        config.text_random_width = 16
        config.compare.seeds = (0, 1)
    return config
