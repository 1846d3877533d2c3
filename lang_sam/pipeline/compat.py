"""lang-segment-anything's argument names, mapped onto LangSAM's before its methods run: v1's
ckpt_path, image_pil and text_prompt; v0.2.x's sam_ckpt_path, gdino_model_ckpt_path, images_pil
and texts_prompt. LangSAM itself speaks only its own names."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.registry import DEFAULT_DETECTOR


def one_of(**names: Any) -> Any:
    """The one value given under any of these names (None if none); two given is an error."""
    given = {name: value for name, value in names.items() if value is not None}
    if len(given) > 1:
        raise InvalidOptionError(f"{' and '.join(given)} name the same thing; give one of them.")
    return next(iter(given.values()), None)


def old_init_names(init: Callable) -> Callable:
    """LangSAM(...) also takes ckpt_path and sam_ckpt_path for sam_checkpoint, and
    gdino_model_ckpt_path for detector."""

    @functools.wraps(init)
    def with_old_names(self, sam_type=None, sam_checkpoint=None, *args, ckpt_path: str | Path | None = None,
                       sam_ckpt_path: str | Path | None = None, gdino_model_ckpt_path: str | Path | None = None, **kwargs) -> None:
        sam_checkpoint = one_of(sam_checkpoint=sam_checkpoint, ckpt_path=ckpt_path, sam_ckpt_path=sam_ckpt_path)
        if gdino_model_ckpt_path is not None:
            if (args[0] if args else kwargs.get("detector", DEFAULT_DETECTOR)) != DEFAULT_DETECTOR:
                raise InvalidOptionError("Give the detector once: detector= or gdino_model_ckpt_path=, not both.")
            if args:
                args = (gdino_model_ckpt_path, *args[1:])
            else:
                kwargs["detector"] = gdino_model_ckpt_path
        init(self, sam_type, sam_checkpoint, *args, **kwargs)

    return with_old_names


def old_predict_names(predict: Callable) -> Callable:
    """predict(...) also takes image_pil and images_pil for images, text_prompt and texts_prompt
    for prompts."""

    @functools.wraps(predict)
    def with_old_names(self, images=None, prompts=None, *args, image_pil=None, images_pil=None, text_prompt=None,
                       texts_prompt=None, **kwargs):
        images = one_of(images=images, image_pil=image_pil, images_pil=images_pil)
        prompts = one_of(prompts=prompts, text_prompt=text_prompt, texts_prompt=texts_prompt, classes=kwargs.get("classes"))
        return predict(self, images, None if kwargs.get("classes") is not None else prompts, *args, **kwargs)

    return with_old_names


def class_lists(classes, image_count: int) -> list[list[str]]:
    """A list of class names for every image, taken as they are (a name may hold a period or a comma)."""
    if isinstance(classes, str):
        raise InvalidPromptError(f"classes is a list of class names, e.g. [{classes!r}]; a string goes in prompts.")
    return [list(classes)] * image_count
