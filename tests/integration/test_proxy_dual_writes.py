"""The proxy's dual writes on a real Milvus (both backends): an application's Insert, Upsert and Delete, as the
SDK sent them, repeated on the marked collection with that collection's model; a write without the text is
counted, not lost silently; around a switch the serving collection is rewritten only where the application's
vectors are not its model's. The encoder is a stand-in (a vector per model and text): what is under test is where
each write goes and with which model's vectors."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from embguard.config.settings import CollectionSettings
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import DUAL_WRITE_PROPERTY, SWITCHED_PROPERTY
from embguard.proxy.dualwrite import DualWriter

pytestmark = pytest.mark.integration
DIM = 8


def encode(model_id: str, texts: list[str]) -> np.ndarray:
    rows = []
    for t in texts:
        seed = int.from_bytes(hashlib.blake2b(f"{model_id}|{t}".encode(), digest_size=8).digest(), "big")
        v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
        rows.append(v / np.linalg.norm(v))
    return np.stack(rows)


def insert_request(collection: str, ids: list[int], texts: list[str], vectors: np.ndarray, text: bool = True) -> bytes:
    fields = [
        schema_pb2.FieldData(
            field_name="id", type=schema_pb2.DataType.Int64, scalars=schema_pb2.ScalarField(long_data={"data": ids})
        ),
        schema_pb2.FieldData(
            field_name="vector",
            type=schema_pb2.DataType.FloatVector,
            vectors=schema_pb2.VectorField(dim=DIM, float_vector={"data": vectors.ravel().tolist()}),
        ),
    ]
    if text:
        fields.append(
            schema_pb2.FieldData(
                field_name="text",
                type=schema_pb2.DataType.VarChar,
                scalars=schema_pb2.ScalarField(string_data={"data": texts}),
            )
        )
    return milvus_pb2.InsertRequest(
        collection_name=collection, fields_data=fields, num_rows=len(ids)
    ).SerializeToString()


def ok() -> bytes:
    return milvus_pb2.MutationResult().SerializeToString()


def stored(m: Milvus, collection: str, ids: list[int]) -> dict[int, np.ndarray]:
    m.flush(collection)
    rows = m.client.query(collection, filter=f"id in {ids}", output_fields=["id", "vector"], consistency_level="Strong")
    return {int(r["id"]): np.float32(r["vector"]) for r in rows}


def test_an_applications_writes_are_repeated_on_the_other_collection_with_its_model(
    milvus_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = milvus_world
    spec = CollectionSettings(name="kb", index_type="FLAT")
    settings = w.settings.model_copy(update={"collections": (spec,)})
    m = Milvus.connect(settings)
    for name, model in (("kb__v0001", "m-old"), ("kb__v0002", "m-new")):
        m.create_collection(spec, DIM, name=name, properties={MODEL_ID_PROPERTY: model})
        m.ensure_loaded(name)
    m.create_alias("kb__v0001", "kb")
    counts: dict[str, int] = {}
    db = settings.milvus.db_name  # as the application's dbname header says
    writer = DualWriter(
        settings,
        lambda: Milvus.connect(settings),
        lambda o, n: counts.__setitem__(o, counts.get(o, 0) + n),
        encoder=encode,
    )
    try:
        texts = ["alpha", "beta", "gamma"]
        writer.offer("Insert", insert_request("kb", [1, 2, 3], texts, encode("m-old", texts)), ok(), db)
        writer.flush()
        assert counts == {}  # no swap: nothing to repeat

        m.set_properties("kb__v0001", {DUAL_WRITE_PROPERTY: "kb__v0002"})  # a swap builds kb__v0002
        writer.offer("Insert", insert_request("kb", [1, 2, 3], texts, encode("m-old", texts)), ok(), db)
        writer.offer("Upsert", insert_request("kb", [2], ["beta 2"], encode("m-old", ["beta 2"])), ok(), db)
        delete = milvus_pb2.DeleteRequest(collection_name="kb", expr="id in [3]").SerializeToString()
        writer.offer("Delete", delete, ok(), db)
        writer.offer("Insert", insert_request("kb", [9], ["no text"], encode("m-old", ["x"]), text=False), ok(), db)
        failed = milvus_pb2.MutationResult(status={"code": 65535, "reason": "refused"}).SerializeToString()
        writer.offer("Insert", insert_request("kb", [8], ["refused"], encode("m-old", ["refused"])), failed, db)
        writer.flush()
        got = stored(m, "kb__v0002", [1, 2, 3, 8, 9])
        assert sorted(got) == [1, 2]  # 3 deleted; 9 had no text; 8 Milvus refused to the application
        assert np.allclose(got[1], encode("m-new", ["alpha"])[0], atol=1e-6)
        assert np.allclose(got[2], encode("m-new", ["beta 2"])[0], atol=1e-6)  # the later write wins
        assert counts.get("no_text") == 1 and "failed" not in counts

        # The switch: the alias serves kb__v0002, which writes back into kb__v0001. An application that embedded with
        # the old model just before writes an old vector into the new collection: rewritten there; a write with the
        # new model's vectors is left alone there, and repeated on the old collection with the old model.
        m.set_properties("kb__v0002", {DUAL_WRITE_PROPERTY: "kb__v0001", SWITCHED_PROPERTY: str(time.time())})
        m.alter_alias("kb__v0002", "kb")
        m.client.insert("kb", [{"id": 5, "text": "late", "vector": encode("m-old", ["late"])[0].tolist()}])
        writer.offer("Insert", insert_request("kb", [5], ["late"], encode("m-old", ["late"])), ok(), db)
        writer.flush()
        m.client.insert("kb", [{"id": 6, "text": "fresh", "vector": encode("m-new", ["fresh"])[0].tolist()}])
        written = counts["written"]
        writer.offer("Insert", insert_request("kb", [6], ["fresh"], encode("m-new", ["fresh"])), ok(), db)
        writer.flush()
        new, old = stored(m, "kb__v0002", [5, 6]), stored(m, "kb__v0001", [5, 6])
        assert np.allclose(new[5], encode("m-new", ["late"])[0], atol=1e-6)
        assert np.allclose(old[5], encode("m-old", ["late"])[0], atol=1e-6)
        assert np.allclose(old[6], encode("m-old", ["fresh"])[0], atol=1e-6)
        assert counts["written"] - written == 1  # id 6: only the old collection needed it

        # A backlog (a loaded proxy repeats a write after the switch's window has passed): which sides a write goes
        # to is decided by when the application's write succeeded, not by when it is repeated. One that succeeded
        # before the switch landed on the old side and still reaches the serving one; a later one does not need to.
        switched = time.time() - 60
        m.set_properties("kb__v0002", {SWITCHED_PROPERTY: str(switched)})
        backlog, later = writer._sides_of("kb", switched - 1), writer._sides_of("kb", time.time())
        assert backlog is not None and backlog.others == ("kb__v0001", "kb__v0002")
        assert later is not None and later.others == ("kb__v0001",)

        # A rollback between the writer's two reads (the alias, then its collection's marks): the rollback marks the
        # old collection, moves the alias and unmarks the new one, so the first read's collection has no mark left.
        # The writer reads the alias again and repeats on both sides, instead of nowhere.
        conn = writer._conn()
        read_marks = conn.properties

        def rolled_back_meanwhile(name: str) -> dict[str, str]:
            monkeypatch.setattr(conn, "properties", read_marks)
            m.set_properties("kb__v0001", {DUAL_WRITE_PROPERTY: "kb__v0002", SWITCHED_PROPERTY: str(time.time())})
            m.alter_alias("kb__v0001", "kb")
            m.drop_properties("kb__v0002", [DUAL_WRITE_PROPERTY])
            return read_marks(name)

        monkeypatch.setattr(conn, "properties", rolled_back_meanwhile)
        raced = writer._sides_of("kb", time.time())
        assert raced is not None and raced.served == "kb__v0001", raced
        assert raced.others == ("kb__v0002", "kb__v0001")
    finally:
        writer.close()
        m.close()
