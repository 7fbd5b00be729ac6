"""Every ```python block of README.md is a complete program, run as is, alone, in a fresh process.

Each block runs with ``python <block>.py`` in an empty temporary directory (the services
``make test`` provides are there: Redis, PostgreSQL with pgvector, embedded Chroma). What a
block says it prints is checked, by these conventions of the README:

- ``print(...)  # X``: ``X`` is the line that print writes;
- ``# -> X`` on the lines right after a print: the same, for lines too long to share;
- a block whose first line is ``# file: NAME.py`` is a file other blocks use (an MCP server
  the host example starts): it is written into every block's directory; one named
  ``test_*.py`` is a pytest module and runs under pytest.

The printed lines must appear in the output in the order the block states them.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from . import _pg

README = Path(__file__).resolve().parent.parent / 'README.md'
FENCE = re.compile(r'^```([\w+-]*)\n(.*?)^```', flags=re.S | re.M)
FILE_DIRECTIVE = re.compile(r'# file: ([\w.-]+\.py)\b')


def readme_blocks() -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```python block."""
    text = README.read_text()
    return [
        (text.count('\n', 0, match.start()) + 1, match.group(2))
        for match in FENCE.finditer(text)
        if match.group(1) == 'python'
    ]


BLOCKS = readme_blocks()


def stated_output(code: str) -> list[str]:
    """The lines a block says its prints write (see the module docstring)."""
    expected: list[str] = []
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    in_print = after_print = False
    depth = 0  # inside brackets, a new line does not start a statement
    for index, token in enumerate(tokens):
        if token.type in (tokenize.INDENT, tokenize.DEDENT):
            continue
        if token.type == tokenize.OP and token.string in '([{':
            depth += 1
        elif token.type == tokenize.OP and token.string in ')]}':
            depth -= 1
        starts_statement = depth == 0 and (
            index == 0
            or tokens[index - 1].type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
        )
        if starts_statement and token.type == tokenize.NAME:
            in_print = token.string == 'print' and tokens[index + 1].string == '('
            after_print = False
        if token.type == tokenize.COMMENT:
            comment = token.string[1:].strip()
            if in_print:  # the comment ending a print statement
                expected.append(comment)
            elif after_print and comment.startswith('-> '):
                expected.append(comment[3:])
            else:
                after_print = False
        elif token.type == tokenize.NEWLINE:
            after_print, in_print = in_print, False
    return expected


def test_the_output_convention_is_read_as_documented():
    code = (
        'print(1)  # 1\n'
        'x = 2  # not output\n'
        'for i in range(2):\n'
        '    print(i)  # 0\n'
        "print('a  # b')\n"
        '# -> a  # b\n'
        '# and a remark\n'
        'print(\n    len(\n        [3]),\n)  # 1\n'
    )
    assert stated_output(code) == ['1', '0', 'a  # b', '1']


def test_every_python_example_is_a_tested_block():
    fences = {match.group(1) for match in FENCE.finditer(README.read_text())}
    # Anything else that is Python would escape this test: shell goes in ```bash blocks.
    assert fences <= {'python', 'bash', ''}, fences
    assert len(BLOCKS) >= 15


@pytest.fixture(scope='module')
def readme_database():
    with _pg.fresh_database('gp_readme') as name:
        yield _pg.dsn(name)


def block_id(block: tuple[int, str]) -> str:
    return f'README.md:{block[0]}'


@pytest.mark.timeout(300)
@pytest.mark.parametrize('block', BLOCKS, ids=block_id)
def test_readme_block_runs_as_is(block, tmp_path, readme_database):
    line, code = block
    for _other_line, other in BLOCKS:
        shared = FILE_DIRECTIVE.match(other)
        if shared:
            (tmp_path / shared.group(1)).write_text(other)
    own = FILE_DIRECTIVE.match(code)
    name = own.group(1) if own else 'example.py'
    (tmp_path / name).write_text(code)
    command = [sys.executable, name]
    if name.startswith('test_'):
        command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', name]
    env = {key: value for key, value in os.environ.items() if not key.startswith(('GENKIT_', 'PYTEST_'))}
    env['DATABASE_URL'] = readme_database
    result = subprocess.run(
        command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f'README.md:{line} failed:\n{result.stdout}\n{result.stderr}'
    printed = [output.rstrip() for output in result.stdout.splitlines()]
    position = 0
    for expected in stated_output(code):
        try:
            position = printed.index(expected, position) + 1
        except ValueError:
            pytest.fail(
                f'README.md:{line} says it prints {expected!r} (in this order); it printed:\n{result.stdout}'
            )
