"""Talking-face video for tokenizer pretraining: VoxCeleb trees -> ArrayRecord clip shards -> (source, driving) pairs."""
