"""What a new user tripped over: clear errors and warnings instead of silent surprises."""

from __future__ import annotations

import pytest

from genkit_parity import InMemorySessionStore


async def test_load_session_without_store_is_value_error(ai):
    with pytest.raises(ValueError, match='store is required: load_session needs store='):
        await ai.load_session('u1')


async def test_chat_with_session_id_but_no_store_warns(ai):
    with pytest.warns(UserWarning, match=r"session_id='u1'\) without store=: .* not persisted"):
        chat = ai.chat(session_id='u1')
    assert (await chat.send('hi')).text
    store = InMemorySessionStore()
    chat = ai.chat(session_id='u2', store=store)  # no warning: filterwarnings=error would fail
    await chat.send('hi')
    assert (await ai.load_session('u2', store=store)).threads['main']


def test_unknown_options_say_what_was_meant(ai):
    with pytest.raises(
        TypeError, match=r"unexpected option 'temperature'; temperature is a model setting: pass config="
    ):
        ai.chat(temperature=0.2)
    with pytest.raises(
        TypeError, match=r"unexpected option 'temprature'; did you mean config=\{'temperature'"
    ):
        ai.chat(temprature=0.2)
    with pytest.raises(TypeError, match=r"unexpected option 'sytem'; did you mean 'system'\?"):
        ai.chat(sytem='be brief')
