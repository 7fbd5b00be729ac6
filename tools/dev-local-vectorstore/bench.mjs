// JS dev-local-vectorstore timings for benches/bench_vectorstore.py.
// Usage: node bench.mjs <input.json> <runs>; input = {texts: [...], vectors: [[...]], queries: [...], queryVectors: [[...]]}.
// Prints {"index_ms": [...], "embed_ms": [...], "retrieve_ms": [...]} (retrieve: mean per query, k=10,
// per run; embed: the embedder calls indexing makes, one `ai.embed` per document as the plugin does).
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

const docs = data.texts.map((t) => Document.fromText(t));
const result = { index_ms: [], embed_ms: [], retrieve_ms: [] };
const original = process.cwd();
for (let run = 0; run < runs; run++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlv-bench-'));
  process.chdir(dir); // the plugin writes __db_bench.json in the working directory
  let start = performance.now();
  await ai.index({ indexer: devLocalIndexerRef('bench'), documents: docs });
  result.index_ms.push(performance.now() - start);
  start = performance.now();
  await Promise.all(docs.map((doc) => ai.embed({ embedder: 'lookup', content: doc })));
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
