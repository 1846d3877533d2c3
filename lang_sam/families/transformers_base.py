"""What every adapter of a transformers model does alike, written once: device and dtype, the
config's model_type checked before any weights are read, from_pretrained guarded (a missing,
gated or unsafe model is an error that says what to do), eval mode, and the parameter count.

A family's adapter says only what is its own: model_types, the transformers classes it loads
(model_classes), the message for a model of another type (refusal), and where it differs, how it
reads the model type or places the model on its device."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from lang_sam.io.weights import config_model_type
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import ModelLoadError
from lang_sam.vocabulary.capabilities import Capabilities
from lang_sam.io.weights import load_pretrained_checked


class TransformersAdapter(Capabilities):
    """A transformers model and its processor from a Hugging Face repo id or a save_pretrained
    folder. Stateless after loading: one instance serves many threads.

    description: the model in messages ("SAM 2.1 video"); model_types: config.json's model_types
    it runs; model_class, processor_class: the transformers classes it loads (by name, so that
    transformers is imported only when a model loads). model_type: the loaded model's."""

    description: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    model_class: ClassVar[str]
    processor_class: ClassVar[str]

    def __init__(self, source: str | Path, device: str | torch.device | None = None,
                 dtype: torch.dtype | str | None = None, name: str | None = None) -> None:
        self.device = resolve_device(device)  # bad options fail before anything is read
        self.dtype = resolve_dtype(dtype, self.device)
        source = str(source)
        self.model_type = self._read_model_type(source)
        if self.model_type not in self.model_types:
            raise ModelLoadError(self._refusal(source, self.model_type))
        network, self.processor = self._from_pretrained(source)
        self.model = self._placed(network)
        self.name = name or source

    def parameter_count(self) -> int:
        """Number of weights, as ``lang-sam models`` and describe() report it."""
        return sum(parameter.numel() for parameter in self.model.parameters())

    def size_text(self) -> str:
        """How big it is, as describe() says it."""
        return f"{self.parameter_count() / 1e6:.1f}M parameters"

    def _read_model_type(self, source: str) -> str:
        """config.json's model_type, read without loading weights."""
        return config_model_type(source, self.description)

    def _refusal(self, source: str, model_type: str) -> str:
        """What to say of a model of another type."""
        return f"{source} holds a {model_type!r} model, not {self.description} (model_type {', '.join(map(repr, self.model_types))})."

    def _classes(self) -> tuple[str, str, str]:
        """The model and processor classes (transformers' names) of self.model_type, and the model's name in messages."""
        return self.model_class, self.processor_class, self.description

    def _from_pretrained(self, source: str) -> tuple[Any, Any]:
        """The model and its processor, each from_pretrained(source) with the errors users can act on;
        weights the model has but the folder lacks (a config.json that builds another model, which
        transformers would fill with random numbers) are an error."""
        import transformers

        model_class, processor_class, description = self._classes()
        load = getattr(transformers, model_class).from_pretrained
        network, loading = load_pretrained_checked(lambda path: load(path, output_loading_info=True), source, description)
        missing = sorted(loading["missing_keys"])
        if missing:
            raise ModelLoadError(f"{source}'s config.json does not describe its weights: {len(missing)} of the {description} "
                                 f"model's weights are not there (e.g. {missing[0]}); give the config.json saved with them.")
        return network, load_pretrained_checked(getattr(transformers, processor_class).from_pretrained, source, description)

    def _placed(self, network: torch.nn.Module) -> torch.nn.Module:
        """The loaded model on the device, in the dtype, in eval mode."""
        return network.to(self.device, self.dtype).eval()
