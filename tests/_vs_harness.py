"""One harness per vector store, so that every store runs the same conformance suite.

A harness defines its store on a fresh table/collection (``define``), and knows how the
store spells a metadata filter, what its scores mean and its default ``k``, and how to point
a store at a missing table/collection or at a server that is down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from typing import Any

from genkit_parity.postgres import Column, PostgresEngine, define_postgres_vector_store

from ._loopback import free_port
from ._pg import dsn
from ._pinecone_server import FakePinecone

os.environ.setdefault('ANONYMIZED_TELEMETRY', 'False')


class PostgresHarness:
    kind = 'postgres'
    default_k = 4
    has_server = True

    def __init__(self, db: str) -> None:
        self.db = db
        self.engine = PostgresEngine.from_url(dsn(db))
        self.table = f't_{uuid.uuid4().hex[:8]}'

    async def setup(self, dims: int = 3) -> None:
        await self.engine.init_vectorstore_table(
            self.table, dims, metadata_columns=[Column('src', 'INTEGER')]
        )

    def define(self, ai: Any, embedder: str, *, table: str | None = None, engine: Any = None) -> str:
        name = table or self.table
        define_postgres_vector_store(
            ai, table=name, embedder=embedder, engine=engine or self.engine, metadata_columns=['src']
        )
        return f'postgres/{name}'

    def filter_options(self, field: str, condition: Any) -> dict[str, Any]:
        return {'filter': {field: condition}}

    def score(self, cosine: float) -> float:
        return 1 - cosine  # cosine distance

    def define_missing(self, ai: Any, embedder: str) -> str:
        return self.define(ai, embedder, table='no_such_table')

    def define_down(self, ai: Any, embedder: str) -> str:
        engine = PostgresEngine.from_url(dsn('x', port=free_port()), retry_seconds=0.3)
        return self.define(ai, embedder, engine=engine)

    def close(self) -> None:
        pass


class ChromaHarness:
    kind = 'chroma'
    default_k = 10

    def __init__(self, client: Any, *, http_port: int | None = None) -> None:
        self.client = client
        self.http_port = http_port
        self.has_server = http_port is not None
        self.collection = f'c_{uuid.uuid4().hex[:8]}'

    async def setup(self, dims: int = 3) -> None:
        from genkit_parity.chroma import create_chroma_collection

        await create_chroma_collection(
            name=self.collection, client=self.client, metadata={'hnsw:space': 'cosine'}
        )

    def define(self, ai: Any, embedder: str, *, collection: str | None = None, client: Any = None) -> str:
        from genkit_parity.chroma import define_chroma_vector_store

        name = collection or self.collection
        define_chroma_vector_store(ai, collection_name=name, embedder=embedder, client=client or self.client)
        return f'chroma/{name}'

    def filter_options(self, field: str, condition: Any) -> dict[str, Any]:
        return {'where': {field: condition}}

    def score(self, cosine: float) -> float:
        return 1 - cosine

    def define_missing(self, ai: Any, embedder: str) -> str:
        return self.define(ai, embedder, collection='no_such_collection')

    def define_down(self, ai: Any, embedder: str) -> str:
        from genkit_parity.chroma import define_chroma_vector_store

        name = self.collection
        define_chroma_vector_store(
            ai,
            collection_name=name,
            embedder=embedder,
            client_params={'host': '127.0.0.1', 'port': free_port()},
        )
        return f'chroma/{name}'

    def close(self) -> None:
        pass


class PineconeHarness:
    kind = 'pinecone'
    default_k = 10
    has_server = True

    def __init__(self) -> None:
        self.server: FakePinecone | None = None

    async def setup(self, dims: int = 3) -> None:
        self.server = FakePinecone(dims).start()

    def define(self, ai: Any, embedder: str) -> str:
        from genkit_parity.pinecone import define_pinecone_vector_store

        assert self.server is not None
        define_pinecone_vector_store(
            ai, index_id='facts', embedder=embedder, api_key='test-key', host=self.server.url
        )
        return 'pinecone/facts'

    def filter_options(self, field: str, condition: Any) -> dict[str, Any]:
        return {'filter': {field: condition}}

    def score(self, cosine: float) -> float:
        return cosine  # Pinecone's cosine score is the similarity

    def define_missing(self, ai: Any, embedder: str) -> str:
        from genkit_parity.pinecone import define_pinecone_vector_store

        assert self.server is not None
        define_pinecone_vector_store(
            ai, index_id='nope', embedder=embedder, api_key='test-key', control_plane=self.server.url
        )
        return 'pinecone/nope'

    def define_down(self, ai: Any, embedder: str) -> str:
        from genkit_parity.pinecone import define_pinecone_vector_store

        define_pinecone_vector_store(
            ai,
            index_id='facts',
            embedder=embedder,
            api_key='test-key',
            host=f'http://127.0.0.1:{free_port()}',
        )
        return 'pinecone/facts'

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


class ChromaServer:
    """``chroma run`` on a loopback port, in a temp dir; None when it cannot start here."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='gp-chroma-')
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        chroma = shutil.which('chroma') or os.path.join(os.path.dirname(os.sys.executable), 'chroma')  # type: ignore[attr-defined]
        if not os.path.exists(chroma):
            return False
        env = {**os.environ, 'ANONYMIZED_TELEMETRY': 'False'}
        self.process = subprocess.Popen(
            [chroma, 'run', '--path', self.dir, '--host', '127.0.0.1', '--port', str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f'http://127.0.0.1:{self.port}/api/v2/heartbeat', timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
