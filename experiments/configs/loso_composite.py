"""LOSO on the composite set (CASME II + SMIC-HS + SAMM, 3 classes: negative, positive,
surprise; 68 subjects, 442 clips) from a token cache.

``dface-jax loso --config experiments/configs/loso_composite.py --tokens tokens.npz --workdir W``

Variants (``loso_composite.py:<arg>``):
  * none: the released D-FACE settings: classifier dim 512, 2 layers, 8 heads, FFN 512,
    dropout 0.2, softmax pooling with the entropy penalty (1e-3), EDCLIP weight 0.3,
    AdamW 2e-4 (0.85, 0.98), weight decay 1e-5, batch 16, 120 epochs. On a 2-core CPU a
    68-fold sweep of this takes hours: it is the GPU/TPU setting.
  * ``synth``: the same method at CPU scale for SynthFACS (dim 32, 4 heads, FFN 64,
    10 epochs at lr 1e-3 because the schedule is short; pixel CNN 8/16/32 channels
    with a stride-2 first conv); every
    other setting as released. Chosen so that the 15 sweeps of ``compare`` (5 models x 3
    seeds) fit in well under an hour on a shared 2-core CPU; not tuned to the results.
  * ``tiny``: a few-second configuration for tests (dim 16, 1 layer, 2 epochs, batch 4).
Ablations are overrides of one field: ``train.edclip_weight=0``, ``classifier.pooling=mean``,
``token_order=shuffled_per_clip``, and ``model=pixel`` (with ``train.edclip_weight=0``).
"""

import ml_collections

VARIANTS = (None, "synth", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"unknown loso_composite variant {arg!r}; use one of {VARIANTS}")
    config = ml_collections.ConfigDict()
    config.dataset = "composite"
    config.model = "dface"                 # "dface" (token Transformer) or "pixel" (baseline CNN)
    config.token_order = "original"        # or "shuffled_per_clip" (the order ablation)
    config.token_shuffle_seed = 0          # fixed across training seeds
    config.text_encoder_dir = ""           # local HF text model dir; "" = random, non-semantic
    config.text_random_width = 64          # width of the random text encoder when no dir
    # Joint fine-tuning of the tokenizer on each fold's training clips (the release keeps
    # training it with weight train.tokenizer_loss_weight = 0.1 on its reconstruction loss).
    # Needs a cache written with `extract-tokens --keep-frames`; the tokenizer runs in every
    # step of every fold, so this is a GPU/TPU setting.
    config.finetune_tokenizer = False
    config.tokenizer_workdir = ""          # "" = the tokenizer that wrote the token cache
    # ClassifierConfig fields; num_classes, seq_len, input_dim and text_dim come from the
    # token cache and the text anchors.
    config.classifier = ml_collections.ConfigDict(dict(
        dim=512, depth=2, heads=8, mlp_dim=512, dropout=0.2, pooling="softmax",
        pooling_temperature=1.0))
    config.pixel = ml_collections.ConfigDict(dict(features=(16, 32, 64), dropout=0.2, stem_stride=1))
    config.train = ml_collections.ConfigDict(dict(
        epochs=120, batch_size=16, learning_rate=2e-4, beta1=0.85, beta2=0.98,
        weight_decay=1e-5, class_balance="loss", sparsity_weight=1e-3, edclip_weight=0.3,
        edclip_temperature=0.07, others_margin=0.2, others_weight=0.2,
        tokenizer_loss_weight=0.1, seed=0))
    config.compare = ml_collections.ConfigDict(dict(seeds=(0, 1, 2)))
    if arg == "synth":
        config.classifier.update(dim=32, heads=4, mlp_dim=64)
        config.pixel.features = (8, 16, 32)
        config.pixel.stem_stride = 2       # strided first conv: 4x fewer FLOPs (pixel_baseline)
        config.train.update(epochs=10, learning_rate=1e-3)
    elif arg == "tiny":
        config.classifier.update(dim=16, depth=1, heads=2, mlp_dim=32)
        config.pixel.features = (4, 8)
        config.train.update(epochs=2, batch_size=4)
        config.text_random_width = 16
        config.compare.seeds = (0, 1)
    return config
