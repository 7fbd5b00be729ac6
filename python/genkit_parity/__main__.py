"""Command line: ``python -m genkit_parity doctor``."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from importlib import metadata

from . import _native

#: Each feature genkit-parity provides, with whether this build has it.
FEATURES = {
    'sessions and chat (ai.create_session, ai.load_session, ai.chat)': True,
    'session stores: in-memory, file, SQLite (Rust core)': True,
    'custom session stores (async get/save)': True,
    'background operations (define_background_action/model, check/cancel/wait_for_operation)': True,
    'dynamic action providers (define_dynamic_action_provider, dynamic_tool)': True,
    'streaming structured output: json/array/jsonl formats on the Rust incremental parser': True,
    'live tracing: Rust exporter to the telemetry server (enable_telemetry, flush_tracing)': True,
    'Dev UI config schemas (genkit_parity.schemas)': True,
    'RAG: retrievers, indexers, rerankers (ai.define_retriever, ai.retrieve, ...)': True,
    'test models, offline embedders and pytest plugin (genkit_parity.testing)': True,
    'offline static embedder (needs the embed extra)': importlib.util.find_spec('static_model') is not None,
    'PostgreSQL + pgvector vector store (genkit_parity.postgres, Rust core)': True,
    'Pinecone vector store and Vertex AI rerankers (genkit_parity.pinecone, genkit_parity.vertexai)': True,
    'Chroma vector store (genkit_parity.chroma; needs the chroma extra)': importlib.util.find_spec('chromadb')
    is not None,
    'MCP host (genkit_parity.mcp; needs the mcp extra)': importlib.util.find_spec('mcp') is not None,
}


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return 'not installed'


def doctor() -> int:
    """Print versions and active features; exit status 1 if genkit is unsupported."""
    genkit_version = _version('genkit')
    supported = genkit_version.startswith('0.12.')
    print(f'genkit-parity {_version("genkit-parity")} (native core {_native.__version__})')
    print(
        f'genkit        {genkit_version}'
        + ('' if supported else '  (unsupported: genkit-parity needs 0.12.x)')
    )
    print(f'python        {sys.version.split()[0]}')
    print('features:')
    for name, active in FEATURES.items():
        print(f'  [{"x" if active else " "}] {name}')
    server = os.environ.get('GENKIT_TELEMETRY_SERVER')
    if os.environ.get('GENKIT_PARITY_TELEMETRY') == 'genkit':
        print("telemetry: genkit's own exporter (GENKIT_PARITY_TELEMETRY=genkit)")
    else:
        print(f'telemetry: {"exports to " + server if server else "no GENKIT_TELEMETRY_SERVER set"}')
    return 0 if supported else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m genkit_parity``."""
    parser = argparse.ArgumentParser(prog='python -m genkit_parity')
    parser.add_argument('command', choices=['doctor'], help='doctor: print versions and active features')
    parser.parse_args(argv)
    return doctor()


if __name__ == '__main__':
    raise SystemExit(main())
