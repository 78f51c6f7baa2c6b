"""The exception tree: every exception embguard raises on purpose is defined here.

Every message names the object, the value and the fix; the CLI shows it on one line (exit code 1)::

    EmbguardError
    ├── ConfigError                 the config file or an EMBGUARD_* variable is wrong
    ├── InvalidInput (ValueError)   an argument cannot be used as given; nothing was written
    ├── MilvusError                 a Milvus call failed for a reason the user can act on
    │   ├── MilvusUnavailable       Milvus cannot be reached at the configured URI
    │   ├── UnsupportedIndex        the backend cannot build the index type
    │   └── CollectionExists        a collection or alias of that name is already there
    ├── MissingModelId              a collection does not record which model made its vectors
    ├── AdoptError                  a collection cannot be recorded as made by a model
    ├── LiteServerError             the local Milvus Lite server could not be started, stopped or found
    ├── ModelError                  a model could not be loaded or used
    │   └── ModelNotFound           the model is not on disk (embguard never downloads one)
    ├── RegistryError               a model version is missing, malformed or in the wrong state
    ├── FeedbackError               feedback could not be recorded
    │   └── InvalidFeedback         a feedback argument is unusable (also an InvalidInput); nothing was recorded
    ├── LabelError                  labels could not be exported or imported
    │   └── InvalidLabels           a label file has bad lines (also an InvalidInput); nothing was imported
    ├── NotEnoughFeedback           too little feedback to train and evaluate a candidate
    ├── TrainingError               the training subprocess failed
    ├── WindowError                 a sampling window could not be built
    ├── ReferenceMissing            a reference window is missing
    │   └── ReferenceCorrupt        a reference file exists but cannot be read
    ├── ReferenceMismatch           a reference was about to be compared with another model's vectors
    ├── StateFileError              a file under state.dir is unreadable
    │   └── PinError                a training pin is unreadable (pruning stops until it is fixed)
    ├── SwapError                   a swap cannot start, continue or finish; nothing irreversible was done
    │   └── SwapLocked              another swap of the same alias is running
    ├── AlertError                  an alert could not be built or sent as asked
    │   └── AlertConfigError        an [[alerts]] target is unusable (also a ConfigError)
    └── MetricsServerError          the metrics endpoint could not be served

Import an exception from here or from ``embguard``, which exports the whole tree; the modules that raise one do not
re-export it.
"""

from __future__ import annotations


class EmbguardError(Exception):
    """Base class of everything embguard raises on purpose."""


class ConfigError(EmbguardError):
    """The configuration file or an ``EMBGUARD_*`` variable is wrong."""


class InvalidInput(EmbguardError, ValueError):
    """An argument (an id, a name, a vector, a text) cannot be used as given; nothing was written."""


class MilvusError(EmbguardError):
    """A Milvus call failed for a reason the user can act on."""


class MilvusUnavailable(MilvusError):
    """Milvus cannot be reached at the configured URI."""


class UnsupportedIndex(MilvusError):
    """The index type cannot be built by the configured backend."""


class CollectionExists(MilvusError):
    """A collection or alias of that name already exists; nothing was created."""


class MissingModelId(EmbguardError):
    """A collection does not record which model made its vectors."""


class AdoptError(EmbguardError):
    """A collection cannot be recorded as made by a model (it records another, or the dimension differs)."""


class LiteServerError(EmbguardError):
    """The local Milvus Lite server could not be started, stopped or found."""


class ModelError(EmbguardError):
    """A model could not be loaded or used."""


class ModelNotFound(ModelError):
    """The model is not on disk; embguard never downloads one."""


class RegistryError(EmbguardError):
    """A model version is missing, malformed or in the wrong state."""


class FeedbackError(EmbguardError):
    """Feedback could not be recorded (bad input or Milvus refused it)."""


class InvalidFeedback(FeedbackError, InvalidInput):
    """A feedback argument (signal, weight, doc id, text) cannot be used as given; nothing was recorded."""


class LabelError(EmbguardError):
    """Labels could not be exported for annotation or imported; nothing was imported."""


class InvalidLabels(LabelError, InvalidInput):
    """A label file has lines that cannot be imported (each named by number); nothing was imported."""


class NotEnoughFeedback(EmbguardError):
    """Too little feedback to train and evaluate a candidate."""


class TrainingError(EmbguardError):
    """Training a candidate failed; the active model and the registry are unchanged."""


class WindowError(EmbguardError):
    """A window could not be built (nothing sampled, unknown collection, no model id)."""


class ReferenceMissing(EmbguardError):
    """A reference is missing or unreadable."""


class ReferenceCorrupt(ReferenceMissing):
    """A reference file exists but cannot be read (a check treats it like a missing reference)."""


class ReferenceMismatch(EmbguardError):
    """A reference made by one model was about to be compared with another model's vectors."""


class StateFileError(EmbguardError):
    """A file under the state directory is unreadable."""


class PinError(StateFileError):
    """A training pin is unreadable; pruning stops until it is fixed."""


class SwapError(EmbguardError):
    """A swap cannot start, continue or finish; nothing irreversible was done."""


class SwapLocked(SwapError):
    """Another swap of the same alias is running."""


class AlertError(EmbguardError):
    """An alert could not be built or sent as asked."""


class AlertConfigError(AlertError, ConfigError):
    """An ``[[alerts]]`` target is unusable (no URL, an unset ``*_env`` variable, a URL that is not http(s),
    no routing key, a duplicate name). Also a :class:`ConfigError`: the fix is in the configuration."""


class MetricsServerError(EmbguardError):
    """The metrics endpoint could not be served (the port is taken or not allowed)."""
