"""A loopback Pinecone data plane: the endpoints the plugin uses, over an in-memory index.

``POST /vectors/upsert`` and ``POST /query`` (cosine, metadata filters with Pinecone's
operators), ``GET /indexes/<name>`` on the same server as the control plane. A vector of
the wrong dimension is refused with Pinecone's 400, as the real service does.
"""

from __future__ import annotations

import math
from typing import Any

from ._loopback import LoopbackServer, Request


def _matches(metadata: dict[str, Any], condition: dict[str, Any]) -> bool:
    for key, test in condition.items():
        if key == '$and':
            if not all(_matches(metadata, part) for part in test):
                return False
            continue
        if key == '$or':
            if not any(_matches(metadata, part) for part in test):
                return False
            continue
        value = metadata.get(key)
        ops = test if isinstance(test, dict) else {'$eq': test}
        for op, expected in ops.items():
            ok = {
                '$eq': lambda v, e: v == e,
                '$ne': lambda v, e: v != e,
                '$in': lambda v, e: v in e,
                '$nin': lambda v, e: v not in e,
                '$gt': lambda v, e: isinstance(v, (int, float)) and v > e,
                '$gte': lambda v, e: isinstance(v, (int, float)) and v >= e,
                '$lt': lambda v, e: isinstance(v, (int, float)) and v < e,
                '$lte': lambda v, e: isinstance(v, (int, float)) and v <= e,
            }[op](value, expected)
            if not ok:
                return False
    return True


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class FakePinecone:
    def __init__(self, dimension: int, index_name: str = 'facts') -> None:
        self.dimension = dimension
        self.index_name = index_name
        self.namespaces: dict[str, dict[str, tuple[list[float], dict[str, Any]]]] = {}
        self.server = LoopbackServer(self.handle)

    def start(self) -> FakePinecone:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def _dimension_error(self, got: int) -> dict[str, Any]:
        message = f'Vector dimension {got} does not match the dimension of the index {self.dimension}'
        return {'code': 3, 'message': message, 'details': []}

    def handle(self, request: Request) -> tuple[int, Any]:
        if request.headers.get('Api-Key') != 'test-key':
            return 401, {'error': {'code': 'UNAUTHENTICATED', 'message': 'Invalid API Key'}}
        if request.method == 'GET' and request.path.startswith('/indexes/'):
            if request.path != f'/indexes/{self.index_name}':
                return 404, {
                    'error': {'code': 'NOT_FOUND', 'message': f'Resource {request.path[9:]} not found'}
                }
            return 200, {'name': self.index_name, 'dimension': self.dimension, 'host': self.url}
        body = request.json()
        namespace = self.namespaces.setdefault(body.get('namespace', ''), {})
        if request.path == '/vectors/upsert':
            for vector in body['vectors']:
                if len(vector['values']) != self.dimension:
                    return 400, self._dimension_error(len(vector['values']))
            for vector in body['vectors']:
                namespace[vector['id']] = (vector['values'], vector.get('metadata') or {})
            return 200, {'upsertedCount': len(body['vectors'])}
        if request.path == '/query':
            if len(body['vector']) != self.dimension:
                return 400, self._dimension_error(len(body['vector']))
            rows = [
                (vid, _cosine(body['vector'], values), metadata)
                for vid, (values, metadata) in namespace.items()
                if _matches(metadata, body.get('filter') or {})
            ]
            order = {vid: position for position, vid in enumerate(namespace)}
            rows.sort(key=lambda row: (-row[1], order[row[0]]))
            matches = [
                {
                    'id': vid,
                    'score': score,
                    'values': [],
                    **({'metadata': md} if body.get('includeMetadata') else {}),
                }
                for vid, score, md in rows[: body['topK']]
            ]
            return 200, {'matches': matches, 'namespace': body.get('namespace', '')}
        return 404, {'error': {'code': 'NOT_FOUND', 'message': 'no such endpoint'}}
