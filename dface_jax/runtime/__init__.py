"""Infrastructure every stage uses: the device mesh, checkpoints, the metrics log and batching."""
