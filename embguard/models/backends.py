"""The one import site of onnxruntime, OpenVINO and NNCF: a model's transformer run as an exported graph.

Only the transformer (the ~all of the compute) is exported; tokenisation, pooling, routers (a query adapter's
extra layer), dense heads and normalisation stay the sentence-transformers modules they are, so an exported
variant is the same model in every respect but the arithmetic of its transformer. ``attach`` replaces the
``Transformer`` module's ``forward`` on one loaded ``SentenceTransformer`` with the exported graph's.

Exports are made offline from the model's own files (no hub, no optimum: its ONNX exporter pins transformers 4),
once per model content and variant, by whichever process needs them first: under an exclusive file lock, built
in a scratch directory and renamed into place, so a crash mid-export leaves nothing half-written and concurrent
loaders (the backfill's Ray workers) wait and reuse it.

- ``onnx``: ``torch.onnx.export`` (opset 17), run by onnxruntime. ``onnx-int8``: onnxruntime's dynamic int8
  quantisation of the MatMuls with weights, per output channel (quantising every op costs 0.05 of cosine).
- ``openvino``: the ONNX graph compiled by OpenVINO at f32. ``openvino-int8``: NNCF's post-training static
  quantisation (transformer preset, mixed) calibrated on 240 paragraphs of Python's bundled reference manual.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embguard.errors import ModelError

EXPORT_FORMAT = 2  # bump when an export's recipe changes: older exports are then rebuilt, never reused
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_CALIBRATION_PASSAGES = 240
_INSTALL_HINT = "install the fast encoders with: pip install 'embguard[fast]'"

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


def attach(st: Any, model_dir: Path, model_hash: str, variant: str) -> Path:
    """Run ``st``'s transformer as ``variant``; returns the export directory it runs from."""
    transformers = {id(m): m for m in st.modules() if hasattr(m, "auto_model") and hasattr(m, "preprocess")}
    if len(transformers) != 1:
        raise ModelError(
            f"model {str(model_dir)!r} has {len(transformers)} transformer modules; the {variant!r} backend "
            "exports exactly one: use model.backend = 'torch' for it"
        )
    (module,) = transformers.values()
    export = _export_dir(Path(model_dir), model_hash, variant)
    with _locked(export):
        if not (export / "export.json").is_file():
            _build(st, module, export, variant)
    names = json.loads((export / "export.json").read_text())["inputs"]
    run = _runner(export, variant)
    output = module.module_output_name

    def forward(features: dict[str, Any], **_: Any) -> dict[str, Any]:
        import torch

        feed = {n: features[n].detach().cpu().numpy().astype(np.int64, copy=False) for n in names}
        features[output] = torch.from_numpy(np.ascontiguousarray(run(feed), dtype=np.float32))
        return features

    module.forward = forward  # an instance attribute: nn.Module.__call__ finds it before the class's forward
    return export


def _export_dir(model_dir: Path, model_hash: str, variant: str) -> Path:
    """Beside the model (``<model>/.exports``, left out of its content hash) when writable, else the user cache."""
    name = f"{model_hash}-{variant}-v{EXPORT_FORMAT}"
    beside = model_dir / ".exports"
    with contextlib.suppress(OSError):
        beside.mkdir(exist_ok=True)
    if os.access(beside, os.W_OK):
        return beside / name
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "embguard" / "exports"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / name


@contextlib.contextmanager
def _locked(export: Path) -> Iterator[None]:
    with Path(f"{export}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _build(st: Any, module: Any, export: Path, variant: str) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=f".{export.name}.", dir=export.parent))
    try:
        sample = module.preprocess(["a short text", "a somewhat longer text, so that the batch is padded"])
        names = [n for n in _INPUTS if n in sample]
        _export_onnx(module.auto_model, {n: sample[n] for n in names}, scratch / "model.onnx")
        if variant == "onnx-int8":
            _quantize_dynamic(scratch / "model.onnx", scratch / "int8.onnx")
        elif variant == "openvino-int8":
            _quantize_openvino(st, module, names, scratch / "model.onnx", scratch / "int8.xml")
        (scratch / "export.json").write_text(json.dumps({"variant": variant, "inputs": names, "format": EXPORT_FORMAT}))
        shutil.rmtree(export, ignore_errors=True)
        scratch.rename(export)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _export_onnx(model: Any, sample: dict[str, Any], out: Path) -> None:
    import torch

    names = list(sample)

    class ByKeyword(torch.nn.Module):  # transformers 5 no longer takes token_type_ids positionally
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return self.model(**dict(zip(names, args, strict=True)), return_dict=True)[0]

    previous = getattr(model.config, "_attn_implementation", None)
    # The eager attention traces to plain ops with the padding mask as an input (SDPA's trace specialises on it).
    with contextlib.suppress(Exception):
        model.set_attn_implementation("eager")
    try:
        axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]}
        # The TorchScript exporter is deprecated for the dynamo one, which needs onnxscript and exports this
        # model's dynamic shapes less reliably; its deprecation and tracer warnings say nothing actionable here.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ByKeyword().eval(),
                tuple(sample[n] for n in names),
                str(out),
                dynamo=False,
                opset_version=17,
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes=axes,
            )
    except Exception as exc:
        raise ModelError(f"could not export the transformer to ONNX at {str(out)!r}: {exc}") from exc
    finally:
        if previous:
            with contextlib.suppress(Exception):
                model.set_attn_implementation(previous)


def _quantize_dynamic(src: Path, out: Path) -> None:
    """int8 weights for every MatMul but the down-projections (a weight taller than wide: the feed-forward's
    output, fed by GELU's outlier-heavy activations). On 300 stdlib passages that keeps every vector at cosine
    >= 0.99 to PyTorch (0.986 with them quantised too) for 1.6x, not 2.2x, of torch's docs/s; ``openvino-int8``
    is the fast one."""
    with _needs("onnxruntime and onnx"):
        import onnx
        from onnxruntime import quantization
    graph = onnx.load(str(src)).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    down = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and any(len(shapes.get(i, ())) == 2 and shapes[i][0] > shapes[i][1] for i in n.input)
    ]
    quantization.quantize_dynamic(
        str(src),
        str(out),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=quantization.QuantType.QInt8,
        nodes_to_exclude=down,
        extra_options={"DefaultTensorType": 1},  # FLOAT, where shape inference cannot type a MatMul's output
    )


def _quantize_openvino(st: Any, module: Any, names: list[str], src: Path, out: Path) -> None:
    with _needs("openvino and nncf"):
        import nncf
        import openvino as ov
    passages = _calibration_texts()
    batches = []
    for i in range(0, len(passages), 16):
        feats = module.preprocess(passages[i : i + 16])
        batches.append({n: feats[n].numpy() for n in names})
    # NNCF draws rich progress bars on stdout (into the CLI's and the demo's output): kept out of it.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantized = nncf.quantize(
            ov.Core().read_model(str(src)),
            nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(batches),
        )
    ov.save_model(quantized, str(out))


def _calibration_texts() -> list[str]:
    """Real prose that ships with every Python: paragraphs of the reference manual (pydoc_data), evenly spread."""
    from pydoc_data.topics import topics

    paragraphs = [" ".join(p.split()) for text in topics.values() for p in text.split("\n\n")]
    paragraphs = [p for p in paragraphs if len(p) >= 80]
    return paragraphs[:: max(1, len(paragraphs) // _CALIBRATION_PASSAGES)][:_CALIBRATION_PASSAGES]


def _runner(export: Path, variant: str) -> Runner:
    import torch

    threads = max(1, torch.get_num_threads())
    if variant.startswith("onnx"):
        with _needs("onnxruntime"):
            import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        graph = export / ("int8.onnx" if variant == "onnx-int8" else "model.onnx")
        session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        return lambda feed: session.run(None, feed)[0]
    with _needs("openvino"):
        import openvino as ov
    # Plain "openvino" is f32 exactly (OpenVINO would otherwise run bf16 where the CPU has it); int8 keeps the
    # default so the few ops NNCF leaves in float run at the CPU's fastest precision.
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
    if variant == "openvino":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    graph = export / ("int8.xml" if variant == "openvino-int8" else "model.onnx")
    compiled = ov.Core().compile_model(str(graph), "CPU", config)
    return lambda feed: np.asarray(compiled(feed)[0])


@contextlib.contextmanager
def _needs(what: str) -> Iterator[None]:
    try:
        yield
    except ImportError as exc:
        raise ModelError(f"the exported encoders need {what} ({exc.name} is missing): {_INSTALL_HINT}") from exc
