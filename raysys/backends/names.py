"""Backend names checked up front, before a model loads or Ray starts.

A name is otherwise looked up in its registry only where the model is built: inside a Ray
actor, after the cluster started and the pool spun up (a typo then costs half a minute of
worker tracebacks). :func:`check_backend_names` looks every given name up in the same
registries at once, so a miss is one line that lists the valid names.
"""

from __future__ import annotations

__all__ = ["check_backend_names"]


def _text_problem(spec: str) -> str | None:
    from raysys.backends.text import RANDOM_ARCHS, TEXT_BACKENDS

    name, sep, arg = spec.partition(":")
    if name not in TEXT_BACKENDS:
        return (f"unknown text backend {name!r}; valid forms: minilm, hf:/path/to/dir, "
                f"random:<arch> (arch in {', '.join(RANDOM_ARCHS)})")
    if name == "hf" and not arg:
        return "'hf:' needs a directory: 'hf:/path/to/model_dir'"
    if name == "random" and arg and arg not in RANDOM_ARCHS:
        return f"unknown random text arch {arg!r}; valid: {', '.join(RANDOM_ARCHS)}"
    if sep and name not in ("hf", "random"):
        return f"{spec!r}: only 'hf:' and 'random:' take an argument"
    return None


def check_backend_names(*, tracker: str | None = None, reid: str | None = None,
                        describer: str | None = None, text: str | None = None,
                        options: dict[str, dict] | None = None, config: bool = False) -> None:
    """Check that each given backend name (None: not used) is registered.

    Args:
        tracker: concept tracker (``TRACKER_BACKENDS``); reid: ReID (``REID_BACKENDS``);
        describer: describer (``DESCRIBER_BACKENDS``); text: text embedder spec
        (``minilm``, ``hf:DIR``, ``random:ARCH``).
        options: ``{"tracker_options": {...}, ...}``: the options of a backend whose
            options are a config (classical, stripes, colours) are checked field by field.
        config: the names may also come from a ``--config`` file (said in the message).

    Raises:
        UnknownBackendError: (a ``ValueError``) naming the option (``--tracker``, or the
            config field of the same name) and listing the valid names.
    """
    from raysys.backends.concept_tracker import TRACKER_BACKENDS
    from raysys.backends.describer import DESCRIBER_BACKENDS
    from raysys.backends.registry import UnknownBackendError
    from raysys.backends.reid import REID_BACKENDS

    def where(option: str) -> str:
        return f"--{option}" + (f" (or `{option}` in --config)" if config else "")

    for option, name, registry in (("tracker", tracker, TRACKER_BACKENDS),
                                   ("reid", reid, REID_BACKENDS),
                                   ("describer", describer, DESCRIBER_BACKENDS)):
        if name is not None and name not in registry:
            raise UnknownBackendError(
                f"{where(option)}: unknown {registry.kind} {name!r}; valid names: "
                f"{', '.join(registry.names())}")
    problem = _text_problem(text) if text is not None else None
    if problem:
        raise UnknownBackendError(f"{where('text')}: {problem}")
    _check_options(dict(tracker=tracker, reid=reid, describer=describer), options or {})


def _check_options(names: dict[str, str | None], options: dict[str, dict]) -> None:
    """Options of the built-in backends, checked as their config (unknown or mistyped
    fields name themselves: ``tracker_options: unknown ClassicalTrackerConfig fields``)."""
    from raysys.backends.attribute_describer import AttributeDescriberConfig
    from raysys.backends.classical.config import ClassicalTrackerConfig
    from raysys.backends.colours import ColourDescriberConfig
    from raysys.backends.reid import StripesConfig
    from raysys.config import from_dict

    configs = {("tracker", "classical"): ClassicalTrackerConfig,
               ("reid", "stripes"): StripesConfig,
               ("describer", "colours"): ColourDescriberConfig,
               ("describer", "attributes"): AttributeDescriberConfig}
    for role, name in names.items():
        cls = configs.get((role, name))
        opts = options.get(f"{role}_options")
        if cls is not None and opts:
            from_dict(cls, opts, path=f"{role}_options")
