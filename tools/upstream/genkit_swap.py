"""pytest plugin: run genkit's own test suite with genkit-parity in place of genkit.

Loaded by ``run_suite.py`` with ``-p genkit_swap`` and configured through environment
variables, so that the same plugin serves every mode of the run:

- ``GENKIT_PARITY_UPSTREAM_MODE``: ``genkit`` (nothing swapped: the baseline),
  ``parity`` (``genkit.Genkit`` and ``genkit.exp.Genkit`` replaced by genkit-parity's
  classes before collection, so every ``from genkit import Genkit`` in the suite gets
  ours) or ``extend`` (genkit's classes kept, every instance passed through
  ``genkit_parity.extend()`` as it is built).
- ``GENKIT_PARITY_UPSTREAM_FAST_FORMATS``: ``0`` turns the Rust output formats off.
- ``GENKIT_PARITY_UPSTREAM_TRACING``: a telemetry server URL; every span is exported to it
  live (``enable_telemetry(realtime=True)``) while the suite runs.
- ``GENKIT_PARITY_UPSTREAM_REPORT``: where to write the JSON list of failed test ids.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

_failed: list[str] = []


def _swap_in_parity(fast_formats: bool) -> None:
    import genkit
    import genkit.exp

    import genkit_parity
    from genkit_parity import GenkitParityMixin

    class Genkit(genkit_parity.Genkit):
        __doc__ = genkit_parity.Genkit.__doc__

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault('fast_formats', fast_formats)
            super().__init__(*args, **kwargs)

    class ExpGenkit(GenkitParityMixin, genkit.exp.Genkit):
        __doc__ = genkit.exp.Genkit.__doc__

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            genkit_parity.extend(self, fast_formats=fast_formats)

    Genkit.__name__ = Genkit.__qualname__ = 'Genkit'
    ExpGenkit.__name__ = ExpGenkit.__qualname__ = 'Genkit'
    genkit.Genkit = Genkit  # type: ignore[misc]
    genkit.exp.Genkit = ExpGenkit  # type: ignore[misc]


def _extend_every_instance(fast_formats: bool) -> None:
    import genkit

    import genkit_parity

    original_init = genkit.Genkit.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        genkit_parity.extend(self, fast_formats=fast_formats)

    genkit.Genkit.__init__ = __init__  # type: ignore[method-assign]


def _export_live(url: str) -> None:
    import genkit_parity

    genkit_parity.enable_telemetry(genkit_parity.TelemetryConfig(server_url=url, realtime=True))


def pytest_configure(config: pytest.Config) -> None:
    """Swap before collection: the suite's modules import ``Genkit`` at import time."""
    mode = os.environ.get('GENKIT_PARITY_UPSTREAM_MODE', 'parity')
    fast_formats = os.environ.get('GENKIT_PARITY_UPSTREAM_FAST_FORMATS', '1') != '0'
    if mode == 'parity':
        _swap_in_parity(fast_formats)
    elif mode == 'extend':
        _extend_every_instance(fast_formats)
    elif mode != 'genkit':
        raise pytest.UsageError(f'GENKIT_PARITY_UPSTREAM_MODE must be genkit, parity or extend, not {mode!r}')
    url = os.environ.get('GENKIT_PARITY_UPSTREAM_TRACING')
    if url and mode != 'genkit':
        _export_live(url)


def pytest_report_header() -> str:
    """Say in the run's header what was swapped, so a log tells which run it is."""
    mode = os.environ.get('GENKIT_PARITY_UPSTREAM_MODE', 'parity')
    fast = os.environ.get('GENKIT_PARITY_UPSTREAM_FAST_FORMATS', '1') != '0'
    tracing = os.environ.get('GENKIT_PARITY_UPSTREAM_TRACING') or 'off'
    return f'genkit-parity upstream run: mode={mode} fast_formats={fast} live_tracing={tracing}'


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record every test that failed in any phase (setup, call or teardown)."""
    if report.failed and report.nodeid not in _failed:
        _failed.append(report.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module that fails to import counts as a failure of that module."""
    if report.failed:
        _failed.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the failed ids where the runner reads them."""
    if os.environ.get('GENKIT_PARITY_UPSTREAM_MODE', 'parity') != 'genkit':
        import genkit_parity
        from genkit_parity.tracing import telemetry_stats

        stats = telemetry_stats()
        if stats is not None:
            print(f'\ngenkit-parity live tracing: {stats}')
        genkit_parity.cleanup_tracing()
    target = os.environ.get('GENKIT_PARITY_UPSTREAM_REPORT')
    if target:
        Path(target).write_text(json.dumps(sorted(_failed), indent=1))
