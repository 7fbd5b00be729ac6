"""Run every benchmark side by side with genkit 0.12 and write benches/results.md."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_dap
import bench_distributed
import bench_formats
import bench_operations
import bench_sessions
import bench_tracing
import bench_vectorstore
import bench_vectorstores

RESULTS = Path(__file__).parent / 'results.md'


def header() -> str:
    return '\n'.join(
        [
            '# Benchmarks: genkit-parity vs genkit 0.12 (pure Python)',
            '',
            f'Written by `make bench` on {datetime.date.today().isoformat()}: '
            f'genkit {metadata.version("genkit")}, genkit-parity {metadata.version("genkit-parity")} '
            f'(release build), Python {platform.python_version()}, {os.cpu_count()} cores. '
            'Both implementations run in the same process and the same run; ratios are what count.',
            '',
        ]
    )


def main() -> None:
    sections = [
        header(),
        bench_sessions.main(),
        bench_operations.main(),
        bench_distributed.main(),
        bench_dap.main(),
        bench_formats.main(),
        bench_tracing.main(),
        bench_vectorstore.main(),
        bench_vectorstores.main(),
    ]
    RESULTS.write_text('\n'.join(sections))
    print(RESULTS.read_text())


if __name__ == '__main__':
    main()
