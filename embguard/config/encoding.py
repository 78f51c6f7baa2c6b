"""``[model]``: which model embeds, where versions live, and how its transformer runs (the encoder variant)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from embguard.config.bounds import PositiveInt, Section
from embguard.errors import ConfigError


class ModelSettings(Section):
    default: str = Field(
        "default",
        description="model spec: 'default' (all-MiniLM-L6-v2 shipped offline), "
        "a local sentence-transformers directory, or a registry version",
    )
    store_dir: Path = Field(Path(".embguard/models"), description="model registry directory")
    device: Literal["cpu", "cuda", "mps"] = Field("cpu", description="torch device for encoding and training")
    batch_size: PositiveInt = Field(64, description="encoding batch size")
    backend: Literal["torch", "onnx", "openvino"] = Field(
        "torch",
        description="how new collections and swapped-in models run their transformer: 'torch' (PyTorch), 'onnx' "
        "(onnxruntime) or 'openvino'; exported offline from the model's files on first use (`embguard[fast]`). "
        "A collection keeps the variant it was built with (its model id records it)",
    )
    quantize: Literal["none", "int8"] = Field(
        "none", description="'int8' quantises an exported backend's weights (openvino-int8: ~3x torch's docs/s)"
    )

    @model_validator(mode="after")
    def _exported_quantization(self) -> ModelSettings:
        if self.backend == "torch" and self.quantize != "none":
            raise ConfigError(
                f"model.quantize = {self.quantize!r} needs an exported backend: "
                "set model.backend = 'onnx' or 'openvino' (or quantize = 'none')"
            )
        if self.backend != "torch" and self.device != "cpu":
            raise ConfigError(f"model.backend = {self.backend!r} runs on the CPU: set model.device = 'cpu'")
        return self

    @property
    def variant(self) -> str:
        """The encoder variant a new model id records: '' (torch), 'onnx', 'onnx-int8', 'openvino', ..."""
        if self.backend == "torch":
            return ""
        return self.backend if self.quantize == "none" else f"{self.backend}-{self.quantize}"
