"""RAG demo: index a small corpus in the local vector store, then answer questions over it.

Everything runs offline: a real 64-dimensional embedder (tokenlearn-static-model), the
Rust local vector store, a word-overlap reranker, and a built-in "quoting" model that
answers from the best document it is given. Run it with ``make demo-rag``; a second run
reuses the stored index (re-indexing the same documents adds nothing, as in JS).
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from genkit import Document
from genkit.model import ModelInfo, ModelRequest, ModelResponse, Supports

from genkit_parity import Genkit
from genkit_parity.testing import define_static_embedder
from genkit_parity.vectorstore import LocalVectorIndex, define_dev_local_vector_store

CORPUS = Path(__file__).parent / 'data' / 'solar_system.txt'
QUESTIONS = [
    'Which planet is the hottest?',
    'How long does sunlight take to reach Earth?',
    'Which planet rotates on its side?',
    'What is the largest object in the asteroid belt?',
    'Which moon has lakes of methane?',
]
STOPWORDS = {
    'the',
    'a',
    'an',
    'is',
    'of',
    'to',
    'in',
    'on',
    'its',
    'which',
    'what',
    'how',
    'has',
    'and',
    'does',
}

ai = Genkit()
define_static_embedder(ai)
directory = sys.argv[1] if len(sys.argv) > 1 else '.genkit-parity/vectors'
define_dev_local_vector_store(ai, name='solar', embedder='staticEmbedder', directory=directory)


def words(text: str) -> set[str]:
    return {w for w in re.findall(r'[a-z0-9]+', text.lower()) if w not in STOPWORDS}


def overlap(query: Document, docs: list[Document], options: object) -> list[Document]:
    """Rerank by how many of the question's words a document shares (ties keep retrieval order)."""
    asked = words(query.text)
    scored = [
        Document(content=d.content, metadata={**(d.metadata or {}), 'score': len(asked & words(d.text))})
        for d in docs
    ]
    return sorted(scored, key=lambda d: -d.metadata['score'])


ai.define_reranker('wordOverlap', overlap)


async def quote(request: ModelRequest, ctx: object) -> ModelResponse:
    """A model that needs no API key: it answers with the first document it was given."""
    docs = request.docs or []
    answer = docs[0].content[0].text if docs else "I don't know."
    return ModelResponse(message={'role': 'model', 'content': [{'text': answer}]})


# supports.context: the model reads request.docs itself, so they are not pasted into the prompt.
ai.define_model('quoteModel', quote, info=ModelInfo(supports=Supports(context=True, multiturn=True)))


@ai.flow(name='answerQuestion')
async def answer_question(question: str) -> str:
    candidates = await ai.retrieve(retriever='devLocalVectorstore/solar', query=question, options={'k': 5})
    ranked = await ai.rerank(reranker='wordOverlap', query=question, documents=candidates)
    response = await ai.generate(model='quoteModel', prompt=question, docs=ranked[:2])
    return response.text


async def main() -> None:
    facts = [
        Document.from_text(line, {'id': f'fact-{n}'})
        for n, line in enumerate(CORPUS.read_text().splitlines(), 1)
    ]
    await ai.index(indexer='devLocalVectorstore/solar', documents=facts)
    stored = len(LocalVectorIndex(directory, 'solar'))
    print(f'indexed {len(facts)} facts; the store holds {stored} rows (re-indexing adds nothing)')
    for question in QUESTIONS:
        print(f'Q: {question}\nA: {await answer_question(question)}\n')


if __name__ == '__main__':
    asyncio.run(main())
