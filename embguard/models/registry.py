"""The model registry: one directory per model version under ``model.store_dir``.

    <store>/<version>/              sentence-transformers files (model card included)
    <store>/<version>/embguard.json identity and history: model_id, status, base model, verdict, manifest

``model_id`` is ``<version>@<content hash>``, the same id recorded on the collections a version embeds, so
``model.load_by_id`` finds it. A version is registered by copying into a temporary directory and renaming
it into place: a crash never leaves a half-written version that looks valid.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embguard.errors import RegistryError
from embguard.models import loading as models
from embguard.models.variant import split_model_id

if TYPE_CHECKING:
    from retrain import GateVerdict
from embguard.config.statedir import write_json

STATUSES = ("candidate", "awaiting_approval", "rejected", "approved", "active", "rolled_back", "retired", "failed")
_VERSION = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class ModelVersion:
    version: str
    model_id: str
    path: Path
    status: str
    created_at: float
    base_model_id: str = ""
    verdict: GateVerdict | None = None  # the promotion gate's verdict; None for imported or base models
    manifest: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def check_version(version: str) -> str:
    """``version`` if it is a registry version name (``v0001``); anything else (a path, ``..``) is refused."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise RegistryError(
            f"model version {version!r} is not a version name; versions look like v0001 (see `embguard models list`)"
        )
    return version


def _corrupt(path: Path, exc: BaseException) -> RegistryError:
    return RegistryError(
        f"model manifest {path} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); restore "
        f"it from a backup, or remove the version directory {path.parent} if the version is unused"
    )


def _read_identity(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise _corrupt(path, exc) from None
    if not isinstance(d, dict):
        raise _corrupt(path, TypeError(f"expected a JSON object, found {type(d).__name__}"))
    return d


def _verdict(d: Any) -> GateVerdict | None:
    if not d:
        return None
    from retrain import GateVerdict  # numpy; only when a stored verdict is read

    return GateVerdict.from_dict(dict(d))


class ModelRegistry:
    def __init__(self, store_dir: Path):
        self.root = Path(store_dir)

    def _next_version(self) -> str:
        nums = [int(m.group(1)) for p in self.root.glob("v*") if (m := _VERSION.match(p.name))]
        return f"v{(max(nums) + 1) if nums else 1:04d}"

    def register(
        self,
        source: Path,
        *,
        status: str = "candidate",
        base_model_id: str = "",
        verdict: GateVerdict | None = None,
        manifest: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        move: bool = False,
    ) -> ModelVersion:
        """Copy (or move) a sentence-transformers directory into the store as the next version."""
        if status not in STATUSES:
            raise RegistryError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        source = Path(source)
        if not (source / "modules.json").is_file() and not (source / "config.json").is_file():
            raise RegistryError(f"{source} is not a sentence-transformers model directory (no modules.json)")
        self.root.mkdir(parents=True, exist_ok=True)
        version = self._next_version()
        tmp = self.root / f".{version}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        if move:
            shutil.move(str(source), tmp)
        else:
            shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("checkpoint-*", "embguard.json"))
        model_id = f"{version}@{models.content_hash(tmp)}"
        ident = {
            "version": version,
            "model_id": model_id,
            "status": status,
            "created_at": time.time(),
            "base_model_id": base_model_id,
            "verdict": verdict.to_dict() if verdict is not None else {},
            "manifest": manifest or {},
            "extra": extra or {},
            "history": [{"status": status, "at": time.time()}],
        }
        write_json(tmp / models.IDENTITY_FILE, ident)
        tmp.rename(self.root / version)
        return self.get(version)

    def get(self, version: str) -> ModelVersion:
        path = self.root / check_version(version)
        ident = path / models.IDENTITY_FILE
        if not ident.is_file():
            known = ", ".join(v.version for v in self.list()) or "none"
            raise RegistryError(f"model version {version!r} is not in the registry {self.root} (versions: {known})")
        d = _read_identity(ident)
        try:
            return ModelVersion(
                version=str(d["version"]),
                model_id=str(d["model_id"]),
                path=path,
                status=str(d["status"]),
                created_at=float(d["created_at"]),
                base_model_id=str(d.get("base_model_id", "")),
                verdict=_verdict(d.get("verdict")),
                manifest=dict(d.get("manifest") or {}),
                extra=dict(d.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _corrupt(ident, exc) from None

    def list(self) -> list[ModelVersion]:
        if not self.root.is_dir():
            return []
        return [
            self.get(p.name)
            for p in sorted(self.root.iterdir())
            if _VERSION.match(p.name) and (p / models.IDENTITY_FILE).is_file()
        ]

    def set_status(self, version: str, status: str, **fields: Any) -> ModelVersion:
        if status not in STATUSES:
            raise RegistryError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        self.get(version)  # validates the name and the file before anything is written
        ident = self.root / version / models.IDENTITY_FILE
        d = _read_identity(ident)
        d["status"] = status
        d.update(fields)
        d.setdefault("history", []).append({"status": status, "at": time.time()})
        write_json(ident, d)
        return self.get(version)

    def awaiting(self) -> builtins.list[ModelVersion]:
        return [v for v in self.list() if v.status == "awaiting_approval"]

    def by_model_id(self, model_id: str) -> ModelVersion | None:
        """The version whose weights ``model_id`` names, whichever encoder variant it runs as."""
        base_id, _ = split_model_id(model_id)
        return next((v for v in self.list() if v.model_id == base_id), None)
