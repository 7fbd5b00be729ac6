"""Every Python example in README.md runs, in order, as one script in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / 'README.md'


def test_readme_examples_run(tmp_path):
    blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
    # The MCP example needs the test suite's MCP server; tests/test_mcp.py covers that code.
    blocks = [block for block in blocks if not block.startswith('# needs an MCP server')]
    assert len(blocks) >= 8
    script = tmp_path / 'readme_examples.py'
    script.write_text('\n\n'.join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert 'Echo: system: Be brief.,hi; config: {}' in result.stdout
    assert '- [dish-1]: banana split' in result.stdout
    assert '- [0]: Genkit flows are traced.' in result.stdout
    assert "{'user': 'Ada', 'plan': 'pro'}" in result.stdout
    assert (tmp_path / '.genkit-parity' / 'readme.sqlite').exists()
