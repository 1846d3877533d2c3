"""The errors lang-sam raises on purpose. Each message says what went wrong and what to do."""


class LangSAMError(Exception):
    """Base class of every error lang-sam raises for bad input, files or settings."""


class CheckpointError(LangSAMError):
    """A weights file is missing, unreadable, unsafe, or for another architecture."""


class InvalidImageError(LangSAMError, ValueError):
    """An image that cannot be read or used (wrong type, shape or mode, empty, corrupt)."""


class InvalidPromptError(LangSAMError, ValueError):
    """A prompt that cannot be used (empty, malformed coordinates or shapes)."""


class InvalidOptionError(LangSAMError, ValueError):
    """An option out of range or of the wrong type (threshold, device, dtype, model size)."""


class ModelLoadError(LangSAMError):
    """A model could not be found or loaded (offline with nothing cached, a wrong folder)."""
