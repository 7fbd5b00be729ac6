"""A Genkit app served over MCP by genkit-parity (``create_mcp_server``), for the MCP tests.

Run as ``python tests/genkit_mcp_app.py stdio`` or ``python tests/genkit_mcp_app.py http <port>``.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import BaseModel

from genkit_parity import Genkit
from genkit_parity.mcp import create_mcp_server
from genkit_parity.testing import define_echo_model

ai = Genkit()
define_echo_model(ai)


class Order(BaseModel):
    item: str
    quantity: int


@ai.tool(description='Places an order')
async def place_order(order: Order) -> dict[str, object]:
    return {'ok': True, 'item': order.item, 'total': order.quantity * 3}


@ai.tool(description='Shouts a word')
async def shout(word: str) -> str:
    return word.upper() + '!'


@ai.tool(description='Always fails')
async def broken(word: str) -> str:
    raise ValueError(f'cannot handle {word}')


ai.define_prompt(
    name='haiku',
    model='echoModel',
    description='A haiku about a topic',
    input_schema={'type': 'object', 'properties': {'topic': {'type': 'string'}}, 'required': ['topic']},
    system='You write haiku.',
    prompt='Write a haiku about {{topic}}.',
)

server = create_mcp_server(ai, name='genkit-app', version='0.3.0')

if __name__ == '__main__':
    if sys.argv[1] == 'stdio':
        asyncio.run(server.start())
    else:
        asyncio.run(server.serve_http(port=int(sys.argv[2])))
