"""lang-segment-anything's argument names, mapped onto LangSAM's: v1's ckpt_path, image_pil and
text_prompt; v0.2.x's sam_ckpt_path, gdino_*_ckpt_path, images_pil and texts_prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lang_sam.errors import InvalidOptionError, InvalidPromptError


def one_of(**names: Any) -> Any:
    """The one value given under any of these names (None if none); two given is an error."""
    given = {name: value for name, value in names.items() if value is not None}
    if len(given) > 1:
        raise InvalidOptionError(f"{' and '.join(given)} name the same thing; give one of them.")
    return next(iter(given.values()), None)


def checkpoint_and_detector(sam_checkpoint, ckpt_path, sam_ckpt_path, detector, gdino_model_ckpt_path,
                            default_detector: str) -> tuple[str | Path | None, Any]:
    """The SAM checkpoint and detector under any of their names."""
    checkpoint = one_of(sam_checkpoint=sam_checkpoint, ckpt_path=ckpt_path, sam_ckpt_path=sam_ckpt_path)
    if gdino_model_ckpt_path is not None:
        if detector != default_detector:
            raise InvalidOptionError("Give the detector once: detector= or gdino_model_ckpt_path=, not both.")
        detector = gdino_model_ckpt_path
    return checkpoint, detector


def images_and_prompts(images, image_pil, images_pil, prompts, text_prompt, texts_prompt, classes) -> tuple[Any, Any]:
    """predict's images and prompts under any of their names (classes is a prompt too)."""
    return (one_of(images=images, image_pil=image_pil, images_pil=images_pil),
            one_of(prompts=prompts, text_prompt=text_prompt, texts_prompt=texts_prompt, classes=classes))


def class_lists(classes, image_count: int) -> list[list[str]]:
    """A list of class names for every image, taken as they are (a name may hold a period or a comma)."""
    if isinstance(classes, str):
        raise InvalidPromptError(f"classes is a list of class names, e.g. [{classes!r}]; a string goes in prompts.")
    return [list(classes)] * image_count
