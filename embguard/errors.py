"""The exception tree. Every message names the object, the value and the fix; the CLI shows it on one line."""

from __future__ import annotations


class EmbguardError(Exception):
    """Base class of everything embguard raises on purpose."""


class ConfigError(EmbguardError):
    """The configuration file or an ``EMBGUARD_*`` variable is wrong."""


class MilvusError(EmbguardError):
    """A Milvus call failed for a reason the user can act on."""


class InvalidInput(EmbguardError, ValueError):
    """An argument (an id, a name, a vector, a text) cannot be used as given; nothing was written."""


class MilvusUnavailable(MilvusError):
    """Milvus cannot be reached at the configured URI."""


class UnsupportedIndex(MilvusError):
    """The index type cannot be built by the configured backend."""


class LiteServerError(EmbguardError):
    """The local Milvus Lite server could not be started, stopped or found."""


class ModelError(EmbguardError):
    """A model could not be loaded or used."""


class ModelNotFound(ModelError):
    """The model is not on disk; embguard never downloads one."""
