"""The exception tree of ``retrain``. Every message names the object, the offending value and the fix."""

from __future__ import annotations


class RetrainError(Exception):
    """Base of every error ``retrain`` raises on purpose."""


class ConfigError(RetrainError, ValueError):
    """A configuration value (TrainConfig, GateConfig, selection budget ...) is out of range."""


class DataError(RetrainError, ValueError):
    """Training or evaluation data is unusable (empty, unknown doc ids, mismatched shapes)."""


class LabelValidationError(RetrainError, ValueError):
    """Annotator labels failed validation; ``errors`` holds every ``(line_number, message)``."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = list(errors)
        shown = "; ".join(f"line {n}: {m}" for n, m in self.errors[:5])
        more = f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"{len(self.errors)} invalid label line(s), nothing imported: {shown}{more}")


class LeakageError(RetrainError, ValueError):
    """A held-out (evaluation) query appears in the training data; the evaluation would be optimistic."""


class ModelDirError(RetrainError):
    """A model or adapter directory is missing, incomplete or not loadable."""


class TrainingFailed(RetrainError):
    """The training child process failed; nothing was written to the output directory."""

    def __init__(self, message: str, exit_code: int | None = None, log_tail: str = "") -> None:
        self.exit_code = exit_code
        self.log_tail = log_tail
        tail = f"\n--- last lines of the training log ---\n{log_tail}" if log_tail else ""
        super().__init__(message + tail)
