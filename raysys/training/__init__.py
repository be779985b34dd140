"""Stage 2: training ViewSAM on Stage 1's pseudo labels with Ray Train.

``config`` (``TrainConfig`` / ``StageConfig``, the paper's staged schedule and the quick
CPU one), ``data`` (clip sources, sample planning, Ray Data decoding), ``model`` (building
the run's model, per-stage trainable groups), ``trainer`` (``run_training`` and the
``TorchTrainer`` worker loop), ``calibrate`` (the tracker's thresholds chosen on held-out
clips), ``curves`` (loss plots). Checkpoints are :mod:`raysys.viewsam.checkpoint`.

Submodules are imported on demand; importing this package loads neither torch nor Ray.
"""
