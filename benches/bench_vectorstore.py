"""The local vector store: top-10 retrieval and indexing vs what a user would otherwise use.

Data is embedding-like (a 48-dimensional signal mixed into 384 dimensions plus noise, unit
length, float32), the same vectors for every contender:

- exact top-10, 1 query and 100 queries, at 10k and 100k rows: ours (``LocalVectorIndex``,
  no Python per stored vector) vs numpy brute force (``X @ q`` + argpartition, at its best of
  the default BLAS threads and one thread) vs faiss-cpu ``IndexFlatIP``; and the floor, a
  read-only pass over the same bytes on every core (numpy's integer max, one thread per core);
- vs JS ``@genkit-ai/dev-local-vectorstore`` on Node (tools/dev-local-vectorstore) at 10k:
  ``ai.retrieve`` end to end on both sides, and indexing 10k documents (a lookup embedder
  returns precomputed vectors), end to end and with the embedder calls the index call makes
  excluded (genkit's embed actions included: they are the embedder's side of the call);
- the approximate index (one-bit codes, exact re-ranking) vs exact and vs chromadb's HNSW:
  recall@10 and time per query.

Ratios are per run (baseline time / ours), median of RUNS runs with min-max.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from _stats import ratios, summary
from genkit_parity.vectorstore import LocalVectorIndex

DIMS = 384
RANK = 48
K = 10
RUNS = 5
SIZES = (10_000, 100_000)
JS_N = 10_000
JS_TOOL = Path(__file__).resolve().parent.parent / 'tools' / 'dev-local-vectorstore'


def embedding_like(n: int, seed: int) -> np.ndarray:
    """Unit-length float32 rows: low-rank signal plus noise (not uniform random)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((RANK, DIMS), dtype=np.float32)
    rows = rng.standard_normal((n, RANK), dtype=np.float32) @ basis
    rows += 0.3 * np.sqrt(RANK) * rng.standard_normal((n, DIMS), dtype=np.float32) / np.sqrt(DIMS) * 4
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32)


def data(n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    both = embedding_like(n + queries, seed=n)
    return np.ascontiguousarray(both[:n]), np.ascontiguousarray(both[n:])


def best_time(fn: Callable[[], Any], repeat: int) -> float:
    """Mean seconds per call over ``repeat`` calls (after one warm-up)."""
    fn()
    began = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - began) / repeat


def settle() -> None:
    """Lets the threads of the previous measurement go idle before the next one starts.

    OpenBLAS's and faiss's (OpenMP) worker threads keep spinning for a while after a call;
    on a 2-core machine they take the core that the next library's own threads need, so
    whatever ran just after numpy or faiss was measured against their spinning threads.
    """
    time.sleep(1.0)


def runs(fn: Callable[[], Any], repeat: int) -> list[float]:
    settle()
    return [best_time(fn, repeat) for _ in range(RUNS)]


def make_index(directory: Path, x: np.ndarray, name: str = 'bench') -> LocalVectorIndex:
    core = LocalVectorIndex(directory, name)
    docs = [f'{{"content":[{{"text":"doc {i}"}}]}}' for i in range(len(x))]
    step = 20_000
    for start in range(0, len(x), step):
        core.add(docs[start : start + step], x[start : start + step].astype('<f4').tobytes())
    return core


def numpy_top_k(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    scores = x @ q
    top = np.argpartition(-scores, K)[:K]
    return top[np.argsort(-scores[top], kind='stable')]


def numpy_top_k_many(x: np.ndarray, qs: np.ndarray) -> np.ndarray:
    scores = qs @ x.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)


def numpy_best(fn: Callable[[], Any], repeat: int) -> list[float]:
    """numpy at its best: per run, the faster of default BLAS threads and one thread."""
    from threadpoolctl import threadpool_limits

    default = runs(fn, repeat)
    with threadpool_limits(limits=1):
        single = runs(fn, repeat)
    return [min(a, b) for a, b in zip(default, single, strict=True)]


def floor_pass(x: np.ndarray) -> Callable[[], Any]:
    """A read-only pass over ``x``'s bytes, split across every core.

    Each core takes the maximum of its share read as uint32 (numpy's SIMD integer max does
    almost no arithmetic per byte, so it runs at memory speed; a float ``sum`` is slower
    here, pairwise summation being bound by adds, and would make a floor that is too low a bar).
    """
    cores = os.cpu_count() or 1
    parts = [part.view(np.uint32) for part in np.array_split(x, cores)]
    pool = ThreadPoolExecutor(cores)

    def read() -> list[Any]:
        return list(pool.map(np.max, parts))

    return read


def row(label: str, ours: list[float], theirs: list[float], unit_scale: float = 1e3) -> str:
    return (
        f'| {label} | {summary([t * unit_scale for t in ours], " ms", 2)} | '
        f'{summary([t * unit_scale for t in theirs], " ms", 2)} | {summary(ratios(theirs, ours), "×", 2)} |'
    )


def exact_section(n: int, tmp: Path) -> list[str]:
    import faiss

    x, qs = data(n, 100)
    core = make_index(tmp / f'exact-{n}', x)
    q = qs[0]
    q_bytes = q.astype('<f4').tobytes()
    qs_bytes = qs.astype('<f4').tobytes()
    flat = faiss.IndexFlatIP(DIMS)
    flat.add(x)
    # Same answers first (ids are row numbers; docs are "doc <row>").
    ours_ids = [int(json.loads(d)['content'][0]['text'].split()[1]) for d, _ in core.search(q_bytes, K)]
    assert ours_ids == numpy_top_k(x, q).tolist(), 'ours and numpy disagree'
    repeat_one = 30 if n <= 10_000 else 10
    ours_one = runs(lambda: core.search(q_bytes, K), repeat_one)
    numpy_one = numpy_best(lambda: numpy_top_k(x, q), repeat_one)
    faiss_one = runs(lambda: flat.search(q[None, :], K), repeat_one)
    floor = runs(floor_pass(x), repeat_one)
    ours_many = runs(lambda: core.search_many(qs_bytes, K, dims=DIMS), 2)
    numpy_many = numpy_best(lambda: numpy_top_k_many(x, qs), 2)
    faiss_many = runs(lambda: flat.search(qs, K), 2)
    return [
        row(f'{n:,} rows, 1 query: numpy', ours_one, numpy_one),
        row(f'{n:,} rows, 1 query: faiss flat', ours_one, faiss_one),
        f'| {n:,} rows, 1 query: ours vs the floor (read pass, every core) | '
        f'{summary([t * 1e3 for t in ours_one], " ms", 2)} | {summary([t * 1e3 for t in floor], " ms", 2)} | '
        f'ours = {summary(ratios(ours_one, floor), "× the floor", 2)} |',
        row(f'{n:,} rows, 100 queries: numpy matrix product', ours_many, numpy_many),
        row(f'{n:,} rows, 100 queries: faiss flat', ours_many, faiss_many),
    ]


def write_and_sync_floor(log: Path) -> float:
    """Seconds to write ``log``'s size in fresh bytes to a new file and fdatasync it: what
    any durable store of the same bytes pays."""
    payload = os.urandom(log.stat().st_size)
    target = log.with_name('floor.bin')
    began = time.perf_counter()
    fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, payload)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - began
    target.unlink()
    return elapsed


def js_section(tmp: Path) -> list[str]:
    """Index 10k documents and retrieve from them: ours vs JS dev-local, embedder excluded."""
    from genkit import Document, Embedding
    from genkit.embedder import EmbedResponse

    from genkit_parity import Genkit
    from genkit_parity.vectorstore import (
        define_dev_local_vector_store,
        dev_local_indexer_ref,
        dev_local_retriever_ref,
    )

    n = JS_N
    x, qs = data(n, 20)
    texts = [f'document number {i}' for i in range(n)]
    queries = [f'query number {i}' for i in range(len(qs))]
    table = {t: v.tolist() for t, v in zip(texts + queries, np.concatenate([x, qs]), strict=True)}
    lines: list[str] = []
    if shutil.which('node') and (JS_TOOL / 'node_modules').exists():
        spec = tmp / 'js-input.json'
        spec.write_text(
            json.dumps(
                {'texts': texts, 'vectors': x.tolist(), 'queries': queries, 'queryVectors': qs.tolist()}
            )
        )
        done = subprocess.run(
            ['node', str(JS_TOOL / 'bench.mjs'), str(spec), str(RUNS)],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
        js = json.loads(done.stdout.strip().splitlines()[-1])
        js_index = [t / 1e3 for t in js['index_ms']]
        js_embed = [t / 1e3 for t in js['embed_ms']]
        js_embed_in_index = [t / 1e3 for t in js['embed_in_index_ms']]
        js_retrieve = [t / 1e3 for t in js['retrieve_ms']]
    else:
        js_index = js_embed = js_embed_in_index = js_retrieve = []
        lines.append(
            '| JS dev-local (tools/dev-local-vectorstore not installed: `make dev-local-vectorstore`) | | | |'
        )

    ai = Genkit()

    async def lookup(request: Any) -> Any:
        return EmbedResponse(embeddings=[Embedding(embedding=table[d.text]) for d in request.input])

    ai.define_embedder('lookup', lookup)
    docs = [Document.from_text(t) for t in texts]
    # The embedder calls an `ai.index` makes, timed inside that call: the store calls
    # `ai.embed_many` on this instance (once per index call), so wrap it.
    embed_many = ai.embed_many
    embedded: list[float] = []

    async def timed_embed_many(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await embed_many(*args, **kwargs)
        finally:
            embedded.append(time.perf_counter() - began)

    ai.embed_many = timed_embed_many  # type: ignore[method-assign]

    floor_times: list[float] = []

    async def measure() -> tuple[list[float], list[float], list[float]]:
        index_times, embed_times, retrieve_times = [], [], []
        for run in range(RUNS):
            directory = tmp / f'js-compare-{run}'
            define_dev_local_vector_store(ai, name=f'bench{run}', embedder='lookup', directory=directory)
            embedded.clear()
            began = time.perf_counter()
            await ai.index(indexer=dev_local_indexer_ref(f'bench{run}'), documents=docs)
            index_times.append(time.perf_counter() - began)
            embed_times.append(sum(embedded))
            floor_times.append(write_and_sync_floor(directory / f'bench{run}.gkvec'))
            retriever = dev_local_retriever_ref(f'bench{run}')
            began = time.perf_counter()
            for q in queries:
                await ai.retrieve(retriever=retriever, query=q, options={'k': K})
            retrieve_times.append((time.perf_counter() - began) / len(queries))
        return index_times, embed_times, retrieve_times

    ours_index, ours_embed, ours_retrieve = asyncio.run(measure())
    if js_index:
        lines.append(
            row('index 10k documents: JS dev-local (one `ai.index`, end to end)', ours_index, js_index)
        )
        ours_excluded = [i - e for i, e in zip(ours_index, ours_embed, strict=True)]
        lines.append(
            row(
                'index 10k documents, embedder excluded (`ai.index` minus its embedder calls; ours timed '
                "inside the call, JS's 10k concurrent `ai.embed` calls timed on their own in the same run): "
                'JS dev-local',
                ours_excluded,
                [i - e for i, e in zip(js_index, js_embed, strict=True)],
            )
        )
        lines.append(
            row(
                'index 10k documents, embedder excluded, both timed inside the call (JS: wall time with any '
                '`ai.embed` in flight, an upper bound on its embedder share): JS dev-local',
                ours_excluded,
                [i - e for i, e in zip(js_index, js_embed_in_index, strict=True)],
            )
        )
        lines.append(
            f'| index 10k documents, embedder excluded: ours vs the floor (write + fdatasync of the same '
            f'bytes to a new file) | {summary([t * 1e3 for t in ours_excluded], " ms", 2)} | '
            f'{summary([t * 1e3 for t in floor_times], " ms", 2)} | '
            f'ours = {summary(ratios(ours_excluded, floor_times), "× the floor", 2)} |'
        )
        lines.append(row('`ai.retrieve` k=10 over 10k: JS dev-local', ours_retrieve, js_retrieve))
    return lines


def approximate_section(tmp: Path) -> list[str]:
    import chromadb

    n = SIZES[-1]
    x, qs = data(n, 100)
    core = make_index(tmp / 'ann', x)
    qs_bytes = [q.astype('<f4').tobytes() for q in qs]
    began = time.perf_counter()
    core.search(qs_bytes[0], K, approximate=True)  # builds the one-bit codes
    build_ours = time.perf_counter() - began
    exact = [{d for d, _ in core.search(q, K)} for q in qs_bytes]

    def recall(found: list[set[Any]]) -> float:
        return statistics.mean(len(f & e) / K for f, e in zip(found, exact, strict=True))

    recall_ours = recall([{d for d, _ in core.search(q, K, approximate=True)} for q in qs_bytes])
    ours_exact = runs(lambda: [core.search(q, K) for q in qs_bytes[:10]], 1)
    ours_ann = runs(lambda: [core.search(q, K, approximate=True) for q in qs_bytes[:10]], 1)

    client = chromadb.EphemeralClient()
    collection = client.create_collection('bench', metadata={'hnsw:space': 'cosine'})
    began = time.perf_counter()
    ids = [str(i) for i in range(n)]
    for start in range(0, n, 5000):
        collection.add(ids=ids[start : start + 5000], embeddings=x[start : start + 5000])
    build_chroma = time.perf_counter() - began
    doc_of = {str(i): f'{{"content":[{{"text":"doc {i}"}}]}}' for i in range(n)}
    chroma_found = []
    for q in qs:
        got = collection.query(query_embeddings=[q.tolist()], n_results=K)['ids'][0]
        chroma_found.append({doc_of[i] for i in got})
    recall_chroma = recall(chroma_found)
    chroma_times = runs(
        lambda: [collection.query(query_embeddings=[q.tolist()], n_results=K) for q in qs[:10]], 1
    )
    per_query = [t / 10 for t in ours_ann]
    return [
        f'| approximate (one-bit codes + exact re-rank) vs exact, {n:,} rows, per query | {summary([t * 1e3 for t in per_query], " ms", 3)} | '
        f'{summary([t * 100 for t in ours_exact], " ms", 3)} | {summary(ratios(ours_exact, ours_ann), "×", 1)} |',
        f'| approximate: ours vs chromadb HNSW, per query | {summary([t * 1e3 for t in per_query], " ms", 3)} | '
        f'{summary([t * 100 for t in chroma_times], " ms", 3)} | {summary(ratios(chroma_times, ours_ann), "×", 2)} |',
        f'| recall@10 (100 queries): ours / chromadb HNSW | {recall_ours:.3f} | {recall_chroma:.3f} | |',
        f'| build: ours (codes, on the first approximate search) / chromadb add | {build_ours:.2f} s | '
        f'{build_chroma:.2f} s | |',
    ]


def main() -> str:
    tmp = Path(tempfile.mkdtemp(prefix='bench-vectors-'))
    try:
        lines = [
            '## Local vector store (issue 10)',
            '',
            f'{DIMS}-dim float32, embedding-like (rank-{RANK} signal plus noise), top-{K}; median of {RUNS} runs '
            '(min–max). Ratio = the other time / ours (above 1: ours is faster).',
            '',
            '| case | ours | other | ratio |',
            '|---|---|---|---|',
        ]
        for n in SIZES:
            lines += exact_section(n, tmp)
        lines += js_section(tmp)
        lines += approximate_section(tmp)
        return '\n'.join(lines) + '\n'
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    import sys

    if len(sys.argv) > 1:  # a quick check at a small size: `python bench_vectorstore.py small`
        SIZES = (2_000, 5_000)
        JS_N = 1_000
        RUNS = 2
    print(main())
