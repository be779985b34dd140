"""Stage 1 of ViewSAM (paper §3.2): pseudo-label generation from raw multi-view videos.

Submodules are imported on demand; importing this package loads no model library.
"""
