// JS dev-local-vectorstore timings for benches/bench_vectorstore.py.
// Usage: node bench.mjs <input.json> <runs>; input = {texts: [...], vectors: [[...]], queries: [...], queryVectors: [[...]]}.
// Prints {"index_ms": [...], "embed_ms": [...], "embed_in_index_ms": [...], "embed_calls": [...],
// "retrieve_ms": [...]} (retrieve: mean per query, k=10, per run; embed: the embedder calls indexing
// makes, one `ai.embed` per document as the plugin does, timed on their own after the index call;
// embed_in_index: the same calls timed inside the index call, see below).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { genkit, Document } from 'genkit';
import { devLocalVectorstore, devLocalIndexerRef, devLocalRetrieverRef } from '@genkit-ai/dev-local-vectorstore';

const [input, runsText] = process.argv.slice(2);
const data = JSON.parse(fs.readFileSync(input, 'utf8'));
const runs = Number(runsText);
const table = new Map();
data.texts.forEach((t, i) => table.set(t, data.vectors[i]));
data.queries.forEach((t, i) => table.set(t, data.queryVectors[i]));

const ai = genkit({
  plugins: [devLocalVectorstore([{ indexName: 'bench', embedder: 'lookup' }])],
});
// A lookup embedder: precomputed vectors, so the embedder costs (almost) nothing.
ai.defineEmbedder({ name: 'lookup', info: { dimensions: data.vectors[0].length } }, async (input) => ({
  embeddings: input.map((doc) => ({ embedding: table.get(new Document(doc).text) })),
}));

// The plugin calls `ai.embed` on this instance: time the embedder calls an `ai.index` makes
// as the wall-clock time during which at least one of them is in flight (they run
// concurrently, under one Promise.all). That also counts the plugin's own work done while
// some embed is pending, so it is an upper bound on the embedder's share of the call.
const embedOf = ai.embed.bind(ai);
let inFlight = 0;
let busySince = 0;
let embedBusy = 0;
let embedCalls = 0;
ai.embed = async (...args) => {
  if (inFlight++ === 0) busySince = performance.now();
  embedCalls++;
  try {
    return await embedOf(...args);
  } finally {
    if (--inFlight === 0) embedBusy += performance.now() - busySince;
  }
};

const docs = data.texts.map((t) => Document.fromText(t));
const result = { index_ms: [], embed_ms: [], embed_in_index_ms: [], embed_calls: [], retrieve_ms: [] };
const original = process.cwd();
for (let run = 0; run < runs; run++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlv-bench-'));
  process.chdir(dir); // the plugin writes __db_bench.json in the working directory
  embedBusy = 0;
  embedCalls = 0;
  let start = performance.now();
  await ai.index({ indexer: devLocalIndexerRef('bench'), documents: docs });
  result.index_ms.push(performance.now() - start);
  result.embed_in_index_ms.push(embedBusy);
  result.embed_calls.push(embedCalls);
  start = performance.now();
  await Promise.all(docs.map((doc) => embedOf({ embedder: 'lookup', content: doc })));
  result.embed_ms.push(performance.now() - start);
  start = performance.now();
  for (const q of data.queries) {
    await ai.retrieve({ retriever: devLocalRetrieverRef('bench'), query: q, options: { k: 10 } });
  }
  result.retrieve_ms.push((performance.now() - start) / data.queries.length);
  process.chdir(original);
  fs.rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + '\n');
