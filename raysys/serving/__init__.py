"""Online cross-view referring tracking as an autoscaled Ray Serve service (``raysys
serve``, ``serve/app.py``): an HTTP ingress, tracker replicas holding the streams'
:class:`~raysys.tracking.tracker.MultiExpressionTracker` state, and a store that keeps
each stream's tracker checkpoint (:mod:`raysys.tracking.state`) outside the replicas.
Nothing is imported here: ``raysys.serving.app.build_app`` is the entry point."""
