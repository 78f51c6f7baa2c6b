"""How a model's vectors are computed, as part of its id: ``<name>@<hash>+<variant>``.

The variant (``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``; empty for PyTorch fp32) changes the
vectors slightly, so it belongs to the id a collection records: every process that encodes for that collection
(the client, the endpoint, dual writes, the backfill, the gate) loads the same variant from the id, and a
vector made by one variant is never searched against documents made by another.
"""

from __future__ import annotations

from embguard.errors import ModelError

VARIANTS = ("", "onnx", "onnx-int8", "openvino", "openvino-int8")  # config.encoding.ModelSettings.variant


def split_model_id(model_id: str) -> tuple[str, str]:
    """``(base id, variant)`` of a model id; the base id names the weights, the variant how they run."""
    base, _, variant = model_id.partition("+")
    if variant not in VARIANTS:
        raise ModelError(f"model id {model_id!r} names an unknown encoder variant {variant!r}; known: {VARIANTS[1:]}")
    return base, variant


def check_variant(variant: str) -> str:
    """``variant`` if it is one embguard can run, else a ModelError naming the known ones."""
    if variant not in VARIANTS:
        raise ModelError(f"unknown encoder variant {variant!r}; known: {VARIANTS[1:]}")
    return variant


def with_variant(model_id: str, variant: str) -> str:
    """``model_id``'s weights run as ``variant`` (replacing any variant it names)."""
    base, _ = split_model_id(model_id)
    return f"{base}+{check_variant(variant)}" if variant else base
