"""Lightning callbacks of ``hnm train``: checkpoints, the training and validation curves, progress
lines and the sweep summary. The strategies' own phases run in the training module."""
