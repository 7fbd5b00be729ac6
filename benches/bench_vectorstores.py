"""Vector stores on real engines: our pgvector store and Chroma plugin vs what a user writes.

pgvector: index N documents (D dims, vectors precomputed so no embedder runs) and run Q
top-10 queries, ours (``PostgresVectorStore.upsert_embedded`` / ``search``) against psycopg 3
+ the ``pgvector`` package (``executemany`` upserts in batches, the same table and SQL), with
the server floor beside them: a binary ``COPY`` of the same rows, and the summed
``EXPLAIN (ANALYZE, TIMING OFF)`` execution time of the same queries.

Chroma: the same kind of data through our plugin (``ai.index`` / ``ai.retrieve``, an embedder
looking the precomputed vectors up) against ``chromadb`` directly (``upsert`` / ``query``),
both on an embedded ``PersistentClient``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
import uuid

import numpy as np
from genkit import Document, Embedding
from genkit.embedder import EmbedResponse

from _stats import ratios, summary
from genkit_parity import Genkit
from genkit_parity.postgres import PostgresEngine, define_postgres_vector_store

N = int(os.environ.get('BENCH_VS_N', '20000'))
DIMS = 384
QUERIES = int(os.environ.get('BENCH_VS_Q', '200'))
CHROMA_N = int(os.environ.get('BENCH_VS_CHROMA_N', '5000'))
RUNS = int(os.environ.get('BENCH_VS_RUNS', '5'))
BATCH = 1000
K = 10


def psql(sql: str, db: str = 'postgres') -> None:
    subprocess.run(
        ['psql', '-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql],
        check=True,
        capture_output=True,
    )


def embedding_like(n: int, seed: int) -> np.ndarray:
    """Low-rank plus noise, normalised: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((16, DIMS))
    vectors = rng.standard_normal((n, 16)) @ basis + 0.3 * rng.standard_normal((n, DIMS))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


QUERY_SQL = (
    'SELECT id::text, content, json_metadata::text, NULL::text, (embedding <=> %s)::float8 '
    'FROM bench ORDER BY embedding <=> %s LIMIT 10'
)
UPSERT_SQL = (
    'INSERT INTO bench (id, content, embedding, json_metadata) VALUES (%s, %s, %s, %s) '
    'ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, embedding = EXCLUDED.embedding, '
    'json_metadata = EXCLUDED.json_metadata'
)


async def pgvector_section(db: str) -> str:
    import psycopg
    from pgvector.psycopg import register_vector

    dsn = f'postgresql://postgres@127.0.0.1:5432/{db}'
    vectors = embedding_like(N, 1)
    queries = embedding_like(QUERIES, 2)
    engine = PostgresEngine.from_url(dsn)
    await engine.init_vectorstore_table('bench', DIMS)
    ai = Genkit()
    store = define_postgres_vector_store(ai, table='bench', embedder='unused', engine=engine)
    documents = [
        Document.from_text(f'document {i}', {'id': str(uuid.UUID(int=i + 1)), 'n': i}) for i in range(N)
    ]
    # Embeddings as an embedder returns them: Python lists of floats. Every side starts from
    # these lists, so turning them into float32 is timed everywhere.
    vector_lists = vectors.tolist()
    # The floor's rows apart from the vectors, built before the clock starts.
    copy_rows = [
        (uuid.UUID(int=i + 1), f'document {i}', json.dumps({'id': str(uuid.UUID(int=i + 1)), 'n': i}))
        for i in range(N)
    ]

    conn = psycopg.connect(dsn, autocommit=False)
    register_vector(conn)

    async def ours_index() -> float:
        psql('TRUNCATE bench', db)
        started = time.perf_counter()
        for start in range(0, N, BATCH):
            await store.upsert_embedded(documents[start : start + BATCH], vector_lists[start : start + BATCH])
        return time.perf_counter() - started

    def psycopg_index() -> float:
        # What a user writes for the same documents and embedding lists: one row per
        # document (id, text, float32 array, JSON metadata), executemany per batch.
        psql('TRUNCATE bench', db)
        started = time.perf_counter()
        with conn.cursor() as cur:
            for start in range(0, N, BATCH):
                batch = documents[start : start + BATCH]
                arrays = np.asarray(vector_lists[start : start + BATCH], dtype=np.float32)
                cur.executemany(
                    UPSERT_SQL,
                    [
                        (doc.metadata['id'], doc.text, array, json.dumps(doc.metadata))
                        for doc, array in zip(batch, arrays, strict=True)
                    ],
                )
                conn.commit()
        return time.perf_counter() - started

    def copy_rows_of(arrays: np.ndarray | None) -> float:
        psql('TRUNCATE bench', db)
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(
                'COPY bench (id, content, embedding, json_metadata) FROM STDIN WITH (FORMAT BINARY)'
            ) as copy:
                copy.set_types(['uuid', 'text', 'vector', 'json'])
                if arrays is None:
                    # From the embedding lists: one numpy conversion for all rows (timed).
                    arrays = np.asarray(vector_lists, dtype=np.float32)
                for (row_id, content, metadata), array in zip(copy_rows, arrays, strict=True):
                    copy.write_row((row_id, content, array, metadata))
            conn.commit()
        return time.perf_counter() - started

    def copy_floor() -> float:
        return copy_rows_of(None)

    def copy_server_floor() -> float:
        return copy_rows_of(vectors)

    index_times: dict[str, list[float]] = {'ours': [], 'psycopg': [], 'copy': [], 'copy_arrays': []}
    for _ in range(RUNS):
        index_times['psycopg'].append(psycopg_index())
        index_times['copy'].append(copy_floor())
        index_times['copy_arrays'].append(copy_server_floor())
        index_times['ours'].append(await ours_index())
    psql('ANALYZE bench', db)

    query_lists = queries.tolist()

    async def ours_queries() -> float:
        started = time.perf_counter()
        for query in query_lists:
            await store.search(query, {'k': K})
        return time.perf_counter() - started

    def psycopg_queries() -> float:
        started = time.perf_counter()
        with conn.cursor() as cur:
            for query in queries:
                cur.execute(QUERY_SQL, (query, query))
                cur.fetchall()
        conn.commit()
        return time.perf_counter() - started

    def server_time() -> float:
        total = 0.0
        with conn.cursor() as cur:
            for query in queries:
                cur.execute('EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ' + QUERY_SQL, (query, query))
                total += cur.fetchone()[0][0]['Execution Time'] / 1000
        conn.commit()
        return total

    query_times: dict[str, list[float]] = {'ours': [], 'psycopg': [], 'server': []}
    for _ in range(RUNS):
        query_times['server'].append(server_time())
        query_times['psycopg'].append(psycopg_queries())
        query_times['ours'].append(await ours_queries())
    conn.close()

    per_query = 1000 / QUERIES
    return '\n'.join(
        [
            f'### pgvector: index {N} × {DIMS}-dim documents, {QUERIES} top-{K} queries (exact scan)',
            '',
            '| | time | vs ours |',
            '|---|---|---|',
            f'| index, ours (batches of {BATCH}: one binary `COPY` each when the rows are new, else one upsert) | {summary(index_times["ours"], " s", 2)} | 1 |',
            f'| index, psycopg 3 + pgvector `executemany` (batches of {BATCH}) | {summary(index_times["psycopg"], " s", 2)} | '
            f'ours {summary(ratios(index_times["psycopg"], index_times["ours"]), "×", 2)} faster |',
            f'| index, floor: psycopg binary `COPY` of the same rows, one transaction, vectors from the same lists | '
            f'{summary(index_times["copy"], " s", 2)} | '
            f'ours at {summary(ratios(index_times["ours"], index_times["copy"]), "×", 2)} the floor |',
            f'| index, server floor: the same `COPY` with the vectors already float32 arrays (not timed) | '
            f'{summary(index_times["copy_arrays"], " s", 2)} | '
            f'ours at {summary(ratios(index_times["ours"], index_times["copy_arrays"]), "×", 2)} |',
            f'| query, ours (per query) | {summary([t * per_query for t in query_times["ours"]], " ms", 2)} | '
            f'{summary(ratios(query_times["ours"], query_times["server"]), "×", 2)} server time |',
            f'| query, psycopg 3 (per query) | {summary([t * per_query for t in query_times["psycopg"]], " ms", 2)} | '
            f'{summary(ratios(query_times["psycopg"], query_times["server"]), "×", 2)} server time |',
            f'| query, floor: server execution time (EXPLAIN ANALYZE, TIMING OFF) | '
            f'{summary([t * per_query for t in query_times["server"]], " ms", 2)} | 1 |',
        ]
    )


async def chroma_section() -> str:
    import chromadb

    from genkit_parity._vectordocs import doc_id
    from genkit_parity.chroma import _chroma_metadata, define_chroma_vector_store
    from genkit_parity.rag import define_indexer, define_retriever

    vectors = embedding_like(CHROMA_N, 3)
    queries = embedding_like(QUERIES, 4)
    texts = [f'document {i}' for i in range(CHROMA_N)]
    # Embeddings as an embedder returns them: Python lists of floats. Both sides start from
    # these lists (the plugin gets them from its embedder), so turning them into float32 is
    # timed on both, as in the pgvector section.
    vector_lists = vectors.tolist()
    query_lists = queries.tolist()
    lookup = {text: vector for text, vector in zip(texts, vector_lists, strict=True)}
    lookup.update({f'query {i}': q for i, q in enumerate(query_lists)})
    docs = [Document.from_text(text, {'n': i}) for i, text in enumerate(texts)]
    # chromadb directly writes the very records the plugin writes (JS's layout: md5 ids,
    # docMetadata, dataType, plus the scalar keys), prepared before the clock starts.
    direct_ids = [doc_id(doc) for doc in docs]
    direct_metadatas = [_chroma_metadata(doc) for doc in docs]
    # What the plugin's results look like, for the no-op retriever below.
    sample_hits = docs[:K]

    times: dict[str, list[float]] = {
        name: []
        for name in (
            'ours_index',
            'direct_index',
            'ours_query',
            'direct_query',
            'genkit_index',
            'genkit_query',
        )
    }
    for run in range(RUNS):
        with tempfile.TemporaryDirectory() as path:
            client = chromadb.PersistentClient(
                path=path, settings=chromadb.Settings(anonymized_telemetry=False)
            )
            ai = Genkit()

            async def embed(request, _ctx=None):
                vectors = [lookup[doc.content[0].text] for doc in request.input]
                return EmbedResponse(embeddings=[Embedding(embedding=vector) for vector in vectors])

            ai.define_embedder('lookup', embed)
            ours_name = f'ours{run}'
            client.create_collection(ours_name, metadata={'hnsw:space': 'cosine'})
            direct = client.create_collection(f'direct{run}', metadata={'hnsw:space': 'cosine'})
            define_chroma_vector_store(ai, collection_name=ours_name, embedder='lookup', client=client)

            # Genkit's own machinery, which any plugin pays: the indexer/retriever action
            # (validation, span with the input and output as JSON) around a function that
            # does nothing but embed (the embedder action and its span).
            async def noop_index(documents, _options, ai=ai):
                await ai.embed_many(embedder='lookup', content=documents)

            async def noop_retrieve(query, _options, ai=ai):
                await ai.embed(embedder='lookup', content=query)
                return sample_hits

            define_indexer(ai.registry, 'noop', noop_index)
            define_retriever(ai.registry, 'noop', noop_retrieve)

            # The three sides take turns, a batch or a query each, so that each meets the
            # machine, the collections' caches and the garbage collector in the same state
            # (timed in blocks, the side that went first after indexing paid Chroma's warm-up
            # and the cache state of the others).
            clock = time.perf_counter
            ours_index = direct_index = genkit_index = 0.0
            for start in range(0, CHROMA_N, BATCH):
                part = slice(start, start + BATCH)
                started = clock()
                await ai.index(indexer=f'chroma/{ours_name}', documents=docs[part])
                ours_index += clock() - started
                started = clock()
                direct.upsert(
                    ids=direct_ids[part],
                    embeddings=np.asarray(vector_lists[part], dtype=np.float32),
                    documents=texts[part],
                    metadatas=direct_metadatas[part],
                )
                direct_index += clock() - started
                started = clock()
                await ai.index(indexer='noop', documents=docs[part])
                genkit_index += clock() - started
            times['ours_index'].append(ours_index)
            times['direct_index'].append(direct_index)
            times['genkit_index'].append(genkit_index)

            # One untimed query each first: Chroma loads a collection's index on its first query.
            await ai.retrieve(retriever=f'chroma/{ours_name}', query='query 0', options={'k': K})
            direct.query(query_embeddings=[query_lists[0]], n_results=K, include=['documents', 'metadatas'])
            ours_query = direct_query = genkit_query = 0.0
            for i, query in enumerate(query_lists):
                started = clock()
                await ai.retrieve(retriever=f'chroma/{ours_name}', query=f'query {i}', options={'k': K})
                ours_query += clock() - started
                started = clock()
                direct.query(query_embeddings=[query], n_results=K, include=['documents', 'metadatas'])
                direct_query += clock() - started
                started = clock()
                await ai.retrieve(retriever='noop', query=f'query {i}', options={'k': K})
                genkit_query += clock() - started
            times['ours_query'].append(ours_query)
            times['direct_query'].append(direct_query)
            times['genkit_query'].append(genkit_query)

    def row(label: str, ours: list[float], direct: list[float], genkit: list[float]) -> str:
        overhead = [(o / d - 1) * 100 for o, d in zip(ours, direct, strict=True)]
        beyond = [(o - g) / d * 100 - 100 for o, d, g in zip(ours, direct, genkit, strict=True)]
        share = [g / d * 100 for d, g in zip(direct, genkit, strict=True)]
        return (
            f'| {label} | {summary(ours, " s", 2)} | {summary(direct, " s", 2)} | '
            f'{summary(overhead, "%", 1)} | {summary(genkit, " s", 2)} = {summary(share, "%", 1)} | '
            f'{summary(beyond, "%", 1)} |'
        )

    return '\n'.join(
        [
            f'### Chroma (embedded): index {CHROMA_N} × {DIMS}-dim documents, {QUERIES} top-{K} queries',
            '',
            'Both sides start from the same embedding lists, write the same records (ids, documents, '
            'metadatas, float32 embeddings) in batches '
            f'of {BATCH} and query with the same include fields. "Genkit machinery" is the same calls '
            'through a no-op indexer/retriever that only embeds: the action wrappers, their spans '
            '(input and output as JSON) and the embedder action, which any plugin pays. The sides take '
            'turns a batch or a query at a time (each collection queried once, untimed, first).',
            '',
            '| | ours (plugin) | chromadb directly | plugin overhead, all | genkit machinery alone (share of chromadb time) | plugin overhead beyond genkit machinery |',
            '|---|---|---|---|---|---|',
            row('index', times['ours_index'], times['direct_index'], times['genkit_index']),
            row(f'{QUERIES} queries', times['ours_query'], times['direct_query'], times['genkit_query']),
        ]
    )


async def run_all() -> str:
    db = f'gp_bench_{uuid.uuid4().hex[:8]}'
    psql(f'CREATE DATABASE {db}')
    try:
        psql('CREATE EXTENSION IF NOT EXISTS vector', db)
        pg = await pgvector_section(db)
    finally:
        psql(f'DROP DATABASE IF EXISTS {db} WITH (FORCE)')
    chroma = await chroma_section()
    return '\n\n'.join(
        [
            '## Vector stores on real engines',
            f'Median of {RUNS} runs (min–max). PostgreSQL 15 + pgvector 0.8.0 on loopback; '
            'ratios are the figures that count.',
            pg,
            chroma,
        ]
    )


def main() -> str:
    return asyncio.run(run_all())


if __name__ == '__main__':
    print(main())
