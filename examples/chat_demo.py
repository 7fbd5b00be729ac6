"""genkit-parity demo: a persisted chat with two threads and session state.

Runs with no API key and no network. The first process chats on two threads of one
session (the scripted test model answers), stores it in SQLite under ./.genkit-parity/,
then starts a second process that reloads the session, continues both threads and prints
the whole transcript.

    python examples/chat_demo.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from genkit_parity import Genkit, default_store
from genkit_parity.testing import define_programmable_model


def make_ai() -> Genkit:
    ai = Genkit(model='programmableModel')

    def assistant(request, send_chunk):
        # A tiny scripted "model": it answers from the last user message and the session state.
        question = request.messages[-1].content[0].text
        state = ai.current_session().state or {}
        name = state.get('name', 'there')
        if 'trip' in question:
            return f'Happy to help plan a trip, {name}! Where to?'
        if 'Lisbon' in question:
            return f'Lisbon in {state.get("month", "spring")} is lovely. I noted it down.'
        if 'invoice' in question:
            return 'Your last invoice was paid on the 3rd.'
        return f'You said: {question}'

    define_programmable_model(ai, respond=assistant)
    return ai


async def first_process() -> str:
    ai = make_ai()
    session = ai.create_session(store=default_store(), initial_state={'name': 'Ada'})
    travel = session.chat(system='You are a travel agent.')
    await travel.send('Help me plan a trip')
    await session.update_state({'destination': 'Lisbon', 'month': 'May'})
    await travel.send('Lisbon, please')
    billing = session.chat('billing', system='You answer billing questions.')
    await billing.send('When was my last invoice paid?')
    return session.id


async def second_process(session_id: str) -> None:
    ai = make_ai()
    session = await ai.load_session(session_id, store=default_store())
    await session.chat().send('Remind me: is Lisbon a good idea?')
    await session.chat('billing').send('Thanks, what about the next invoice?')
    print(f'session {session.id} (reloaded in a second process from {default_store().path})')
    print(f'state: {session.state}')
    for thread, messages in session.threads.items():
        print(f'\n[{thread}]')
        for message in messages:
            text = ''.join(part.text or '' for part in message.content)
            print(f'  {message.role:>6}: {text}')


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == '--continue':
        asyncio.run(second_process(sys.argv[2]))
        return
    session_id = asyncio.run(first_process())
    print(f'first process: stored session {session_id}; handing over to a second process...\n')
    subprocess.run([sys.executable, __file__, '--continue', session_id], check=True)


if __name__ == '__main__':
    main()
