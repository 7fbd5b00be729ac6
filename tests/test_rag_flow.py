"""A whole RAG flow end to end: index → retrieve → rerank → generate with docs, offline.

Real parts only: the tokenlearn static embedder, the Rust local vector store on disk, the
programmable model, and the bundled demo corpus; the demo itself runs as a user runs it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from genkit import Document

from genkit_parity.testing import define_static_embedder
from genkit_parity.vectorstore import define_dev_local_vector_store

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / 'examples' / 'data' / 'solar_system.txt'
CONTEXT_PREFACE = '\n\nUse the following information to complete your task:\n\n'


async def test_index_retrieve_rerank_generate(ai, programmable_model, tmp_path, spans):
    define_static_embedder(ai)
    define_dev_local_vector_store(ai, name='solar', embedder='staticEmbedder', directory=tmp_path)
    facts = [
        Document.from_text(line, {'id': f'f{n}'}) for n, line in enumerate(CORPUS.read_text().splitlines())
    ]
    await ai.index(indexer='devLocalVectorstore/solar', documents=facts)

    def keyword_score(query, docs, options):
        return sorted(
            (
                Document(content=d.content, metadata={**d.metadata, 'score': float('Titan' in d.text)})
                for d in docs
            ),
            key=lambda d: -d.metadata['score'],
        )

    ai.define_reranker('keyword', keyword_score)
    programmable_model.respond_with('Titan.')

    @ai.flow(name='ragFlow')
    async def rag_flow(question: str) -> str:
        docs = await ai.retrieve(retriever='devLocalVectorstore/solar', query=question, options={'k': 3})
        ranked = await ai.rerank(reranker='keyword', query=question, documents=docs)
        response = await ai.generate(model='programmableModel', prompt=question, docs=ranked[:1])
        return response.text

    assert await rag_flow('Which moon has lakes of methane?') == 'Titan.'
    request = programmable_model.last_request
    assert request is not None
    [document] = request.docs
    assert document.metadata['id'] == 'f15'
    assert document.content[0].text.startswith("Titan, Saturn's largest moon")
    context = request.messages[-1].content[-1]
    assert context.metadata == {'purpose': 'context'}
    assert context.text == f'{CONTEXT_PREFACE}- [f15]: {document.content[0].text}\n\n'
    paths = {s.attributes['genkit:path'] for s in spans.get_finished_spans()}
    assert '/{ragFlow,t:action,s:flow}/{devLocalVectorstore%2Fsolar,t:action,s:retriever}' in paths
    assert '/{ragFlow,t:action,s:flow}/{keyword,t:action,s:reranker}' in paths


def test_the_rag_demo_answers_from_the_corpus(tmp_path):
    run = [sys.executable, str(ROOT / 'examples' / 'rag_demo.py'), str(tmp_path / 'vectors')]
    first = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    assert 'indexed 20 facts; the store holds 20 rows' in first.stdout
    assert 'Q: Which planet is the hottest?\nA: Venus is the hottest planet' in first.stdout
    assert 'A: Light from the Sun takes about eight minutes' in first.stdout
    assert 'A: Uranus rotates on its side' in first.stdout
    assert "A: Titan, Saturn's largest moon" in first.stdout
    # A second run reuses the store: the same documents are not added twice.
    second = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
