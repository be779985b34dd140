"""Model backends of Stage 1: ReID, text embedding, attribute description.

Each role is a small protocol with a registry of backends: a classical default that needs
no weights, and real models that load local checkpoints only (nothing is downloaded)::

    from raysys.backends import REID_BACKENDS, build_text_embedder
    reid = REID_BACKENDS.build("osnet", name="osnet_x1_0", checkpoint="osnet_x1_0.pth")
    text = build_text_embedder("minilm")

Importing this package is cheap: torch, transformers, torchreid and vLLM are imported
inside the constructors that need them.
"""

from raysys.backends.checkpoints import require_dir, require_file
from raysys.backends.colours import COLOUR_NAMES, ColourDescriber, ColourDescriberConfig
from raysys.backends.describer import (
    DESCRIBER_BACKENDS,
    Describer,
    HFVLMDescriber,
    VLLMDescriber,
)
from raysys.backends.phrases import attributes_to_text
from raysys.backends.registry import Registry, UnknownBackendError
from raysys.backends.reid import (
    REID_BACKENDS,
    OSNetReID,
    ReIDModel,
    StripesConfig,
    StripesReID,
    tracklet_embedding,
)
from raysys.backends.text import (
    TEXT_BACKENDS,
    TextEmbedder,
    TransformerTextEmbedder,
    build_text_embedder,
)

__all__ = [
    "COLOUR_NAMES",
    "ColourDescriber",
    "ColourDescriberConfig",
    "DESCRIBER_BACKENDS",
    "Describer",
    "HFVLMDescriber",
    "OSNetReID",
    "REID_BACKENDS",
    "ReIDModel",
    "Registry",
    "StripesConfig",
    "StripesReID",
    "TEXT_BACKENDS",
    "TextEmbedder",
    "TransformerTextEmbedder",
    "UnknownBackendError",
    "VLLMDescriber",
    "attributes_to_text",
    "build_text_embedder",
    "require_dir",
    "require_file",
    "tracklet_embedding",
]
