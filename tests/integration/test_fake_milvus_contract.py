"""The in-memory Milvus of tests/fakes.py against the real facade: the scenario the unit test runs on the fake
(tests/unit/test_swap_rollback_and_abort.py) passes on every real backend too, so the fake cannot drift from
``embguard.milvus.milvus.Milvus``."""

from __future__ import annotations

from fakes import milvus_contract_scenario

from embguard.config.settings import CollectionSettings
from embguard.milvus.milvus import Milvus


def test_the_real_milvus_keeps_the_contract_the_fake_is_held_to(milvus_world) -> None:
    m = Milvus.connect(milvus_world.settings)
    try:
        milvus_contract_scenario(m, CollectionSettings(name="fk"))
    finally:
        m.close()
