"""The classical concept tracker's parts (see :mod:`raysys.backends.concept_tracker`).

* :mod:`.config`: :class:`ClassicalTrackerConfig`, every setting with its meaning;
* :mod:`.foreground`: background model (per-pixel mode, ghost repair), foreground masks;
* :mod:`.detect`: perspective size model, vehicle and person detection per frame;
* :mod:`.associate`: frame-to-frame association, stitching, gap filling;
* :mod:`.follow`: single-object following for re-propagation;
* :mod:`.video_state`: what is derived from one video, cached;
* :mod:`.tracker`: :class:`ClassicalConceptTracker` (``track`` / ``repropagate``).
"""
