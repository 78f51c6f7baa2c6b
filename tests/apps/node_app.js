// An application as users write it with the Node SDK (@zilliz/milvus2-sdk-node): it embeds elsewhere and searches
// Milvus. Run unchanged except for its address. Usage: node node_app.js ADDRESS DB COLLECTION OUT.json [--keep] [--search-only]
// The vectors (and texts) come from a file the test writes (Node has no numpy): OUT.input.json next to OUT.json.
const fs = require("fs");
const { MilvusClient, DataType } = require("@zilliz/milvus2-sdk-node");

async function main() {
  const [address, db, collection, out, ...flags] = process.argv.slice(2);
  const input = JSON.parse(fs.readFileSync(out.replace(/\.json$/, ".input.json")));
  const client = new MilvusClient({ address, database: db || undefined });
  await client.connectPromise;
  const searchOnly = flags.includes("--search-only");
  if (!searchOnly) {
    if ((await client.hasCollection({ collection_name: collection })).value) {
      await client.dropCollection({ collection_name: collection });
    }
    const dim = input.docs[0].length;
    await client.createCollection({
      collection_name: collection,
      fields: [
        { name: "id", data_type: DataType.Int64, is_primary_key: true },
        { name: "vector", data_type: DataType.FloatVector, dim },
        { name: "text", data_type: DataType.VarChar, max_length: 2048 },
      ],
    });
    const texts = input.texts || input.docs.map((_, i) => `document ${i}`);
    for (let start = 0; start < input.docs.length; start += 500) {
      const data = input.docs.slice(start, start + 500).map((v, j) => ({ id: start + j, vector: v, text: texts[start + j] }));
      await client.insert({ collection_name: collection, data });
    }
    await client.flushSync({ collection_names: [collection] });
    await client.createIndex({ collection_name: collection, field_name: "vector", index_type: "FLAT", metric_type: "COSINE" });
    await client.loadCollectionSync({ collection_name: collection });
  }
  const res = await client.search({ collection_name: collection, data: input.queries, limit: 5, output_fields: ["text"] });
  const hits = res.results.map((r) => r.map((h) => [Number(h.id), h.score, h.text]));
  const error = async (call) => {
    try {
      const r = await call();
      const s = r.status || r;
      return s.error_code && s.error_code !== "Success" ? `${s.error_code}: ${s.reason}` : "no error";
    } catch (e) {
      return `exception: ${e.message}`;
    }
  };
  const errors = {
    unknown_collection: await error(() => client.search({ collection_name: "no_such_collection", data: [input.queries[0]], limit: 3 })),
    wrong_dimension: await error(() => client.search({ collection_name: collection, data: [[0.1, 0.2, 0.3]], limit: 3 })),
  };
  if (!flags.includes("--keep") && !searchOnly) await client.dropCollection({ collection_name: collection });
  await client.closeConnection();
  fs.writeFileSync(out, JSON.stringify({ hits, errors, queries: input.queries }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
