"""Downstream semantic segmentation (paper Tab. 2) on mmsegmentation: zoo recipes, collection and the `segmentation`
evaluation domain. Importing this package is cheap; the mmsegmentation stack is loaded by `stack.load()` on first use
(optional extra `seg`, requirements-seg.txt)."""
