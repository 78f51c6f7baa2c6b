"""The daemon's pager: turns the watched collections' state into active alerts and hands them to the notifier.

What pages and how it reads is decided in :mod:`embguard.daemon.active_alerts` (pure functions); this class holds
the little state that needs (whether Milvus has been watched yet, whether the registry was readable last time) and
the one Milvus read a page makes (example texts of a new-query cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from embguard.config.settings import Settings
from embguard.daemon import active_alerts, clusters
from embguard.daemon.watched import Watched
from embguard.errors import EmbguardError
from embguard.milvus.milvus import Milvus
from embguard.models.registry import ModelRegistry, ModelVersion

log = logging.getLogger("embguard.daemon")


class Pager:
    def __init__(
        self,
        settings: Settings,
        watched: dict[str, Watched],
        milvus: Callable[[], Milvus],
        milvus_up: Callable[[], bool],
        notifier: Any,
    ):
        self.settings = settings
        self.notifier = notifier
        self._watched = watched
        self._milvus = milvus
        self._milvus_up = milvus_up
        self.milvus_watched = False  # milvus_watch ran at least once: MilvusDown is known either way
        self._registry_ok = True

    def alerts(self) -> list[Any]:
        """The alerts active now, from the latest reports (the notifier dedups and resolves)."""
        return active_alerts.active_alerts(
            milvus_up=self._milvus_up(),
            milvus_uri=self.settings.milvus_uri,
            watched=self._watched,
            awaiting=self._awaiting_by_alias(),
            consecutive=self.settings.drift.consecutive,
            describe=self.describe_cluster,
        )

    def _awaiting_by_alias(self) -> dict[str, list[ModelVersion]]:
        out: dict[str, list[ModelVersion]] = {}
        try:
            for v in ModelRegistry(self.settings.model.store_dir).awaiting():
                out.setdefault(str(v.extra.get("alias", "")), []).append(v)
            self._registry_ok = True
        except EmbguardError as exc:  # a corrupt manifest: candidate alerts stay as they were, named in the log
            if self._registry_ok:
                log.error("%s", exc)
            self._registry_ok = False
        return out

    def settled(self, key: str) -> bool:
        return active_alerts.settled(
            key, watched_milvus=self.milvus_watched, watched=self._watched, registry_ok=self._registry_ok
        )

    def describe_cluster(self, w: Watched, cluster: Any) -> dict[str, Any]:
        def texts_of(collection: str, ids: list[Any], field: str) -> list[str]:
            try:
                return [str(r[field]) for r in self._milvus().query(collection, ids=ids, output_fields=[field])]
            except EmbguardError:  # examples are a courtesy: a page without them still goes out
                return []

        return clusters.describe_cluster(w, cluster, texts_of)

    def notify(self) -> None:
        if self.notifier is None:
            return
        from embguard.alerts.notifier import Notifier

        try:
            active = self.alerts()
            if isinstance(self.notifier, Notifier):
                self.notifier.update(active, settled=self.settled)
            else:  # an injected notifier (tests, embedding apps) gets the plain level signal
                self.notifier.update(active)
        except Exception:  # alerting problems are logged, never fatal
            log.exception("sending alerts failed")
