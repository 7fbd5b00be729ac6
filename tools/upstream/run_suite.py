"""Run genkit's own test suite (from its PyPI sdist) with genkit-parity in place of genkit.

    python tools/upstream/run_suite.py [--modes parity,extend] [--no-fast-formats]
                                       [--live-tracing URL] [pytest args...]

Steps:

1. Download the sdist of the pinned genkit version with ``pip download`` (once; kept in
   ``.upstream/``) and check its sha256 against the pin below.
2. Lay it out as genkit's monorepo has it (``py/packages/genkit/{src,tests}``), with the
   two spec files the suite reads from the monorepo root (``tests/specs/``) taken from
   ``../shared/upstream/genkit-specs`` when that folder exists. Without it the two modules
   that need them are skipped, and the run says so.
3. Run the suite once per mode with genkit's workspace pytest settings (``pytest.ini``
   here) and the ``genkit_swap`` plugin: ``parity`` swaps ``genkit.Genkit`` and
   ``genkit.exp.Genkit`` for genkit-parity's classes, ``extend`` passes every instance
   through ``genkit_parity.extend()``; ``genkit`` is the unswapped baseline.
4. Fail when a test fails that ``expected-differences.txt`` does not list, or when a
   listed test no longer fails in any mode (the list must stay exactly as short as it is).

The tests import the ``genkit`` installed in the running interpreter (the one genkit-parity
is built against), not the sdist's copy of it: the installed version is checked to be the
pinned one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

GENKIT_VERSION = '0.12.0'
SDIST_SHA256 = '996d26d80b9fe65699fc7851b88a41463daa10521ca43a26d4714fdd46ac6247'

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WORK = REPO / '.upstream'
SPECS = REPO.parent / 'shared' / 'upstream' / 'genkit-specs'
SPEC_FILES = ('agent.yaml', 'generate.yaml')
# The test modules that read the spec files (from <monorepo>/tests/specs/).
SPEC_MODULES = ('tests/genkit/ai/agent_conformance_test.py', 'tests/genkit/ai/generate_test.py')
MODES = ('genkit', 'parity', 'extend')


def sdist() -> Path:
    """The verified sdist, downloaded on first use."""
    name = f'genkit-{GENKIT_VERSION}.tar.gz'
    target = WORK / 'downloads' / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            subprocess.run(
                [
                    sys.executable,
                    '-m',
                    'pip',
                    'download',
                    '--quiet',
                    '--no-binary',
                    ':all:',
                    '--no-deps',
                    f'genkit=={GENKIT_VERSION}',
                    '-d',
                    scratch,
                ],
                check=True,
            )
            Path(scratch, name).replace(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        target.unlink()
        raise SystemExit(f'{name}: sha256 {digest} does not match the pinned {SDIST_SHA256}; removed it')
    return target


def lay_out(archive: Path) -> tuple[Path, bool]:
    """Unpack into ``.upstream/monorepo`` as genkit's repository has it; (package dir, specs found)."""
    root = WORK / 'monorepo'
    shutil.rmtree(root, ignore_errors=True)
    package = root / 'py' / 'packages' / 'genkit'
    package.mkdir(parents=True)
    top = f'genkit-{GENKIT_VERSION}/'
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.name.startswith(top) or not (member.isfile() or member.isdir()):
                continue
            member.name = member.name[len(top) :]
            if member.name:
                tar.extract(member, package, filter='data')
    found = all((SPECS / f).is_file() for f in SPEC_FILES)
    if found:
        (root / 'tests' / 'specs').mkdir(parents=True)
        for f in SPEC_FILES:
            shutil.copyfile(SPECS / f, root / 'tests' / 'specs' / f)
    return package, found


def expected_differences() -> dict[str, str]:
    """``test id -> reason`` from expected-differences.txt (``<id>  # <reason>`` lines)."""
    entries = {}
    for line in (HERE / 'expected-differences.txt').read_text().splitlines():
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        test_id, sep, reason = line.partition('  # ')
        if not sep or not reason.strip():
            raise SystemExit(f'expected-differences.txt: every entry needs "  # <reason>": {line!r}')
        entries[test_id.strip()] = reason.strip()
    return entries


def run_mode(
    package: Path, mode: str, *, specs: bool, fast_formats: bool, tracing: str | None, extra: list[str]
) -> list[str] | None:
    """Run the suite once; the failed test ids, or None when pytest itself broke."""
    report = WORK / f'failed-{mode}.json'
    report.unlink(missing_ok=True)
    env = {
        **os.environ,
        'PYTHONPATH': os.pathsep.join([str(HERE), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep),
        'GENKIT_PARITY_UPSTREAM_MODE': mode,
        'GENKIT_PARITY_UPSTREAM_FAST_FORMATS': '1' if fast_formats else '0',
        'GENKIT_PARITY_UPSTREAM_REPORT': str(report),
    }
    env.pop('GENKIT_PARITY_UPSTREAM_TRACING', None)
    if tracing:
        env['GENKIT_PARITY_UPSTREAM_TRACING'] = tracing
    for name in ('GENKIT_ENV', 'GENKIT_TELEMETRY_SERVER'):  # genkit's suite sets these itself
        env.pop(name, None)
    command = [
        sys.executable,
        '-m',
        'pytest',
        '-c',
        str(HERE / 'pytest.ini'),
        '--rootdir',
        str(package),
        '-p',
        'genkit_swap',
        '-p',
        'no:genkit_parity',  # our own user fixtures (an `ai` fixture) stay out of genkit's suite
        '-p',
        'no:cacheprovider',
        '-q',
        '--no-header',
        '-o',
        'console_output_style=classic',
        *([] if specs else [f'--ignore={package / m}' for m in SPEC_MODULES]),
        *extra,
        str(package / 'tests'),
    ]
    print(f'\n== genkit {GENKIT_VERSION} test suite, mode {mode}', flush=True)
    result = subprocess.run(command, cwd=package, env=env)
    if not report.exists() or result.returncode not in (0, 1):
        print(f'pytest exited with {result.returncode} and no report', file=sys.stderr)
        return None
    return list(json.loads(report.read_text()))


def main() -> int:
    """Run the modes asked for and compare their failures with the expected differences."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--modes', default='parity,extend', help=f'comma-separated, of {", ".join(MODES)}')
    parser.add_argument('--no-fast-formats', action='store_true', help='turn the Rust output formats off')
    parser.add_argument('--live-tracing', metavar='URL', help='export every span live to this server')
    args, extra = parser.parse_known_args()
    modes = [m for m in args.modes.split(',') if m]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f'unknown mode(s) {unknown}; choose from {MODES}')
    installed = metadata.version('genkit')
    if installed != GENKIT_VERSION:
        raise SystemExit(f'genkit {installed} is installed; this suite is the one of {GENKIT_VERSION}')

    package, specs = lay_out(sdist())
    if not specs:
        print(
            f'NOTE: {SPECS} not found: skipping {", ".join(SPEC_MODULES)} '
            '(they read the monorepo spec files; see shared/upstream/README.md)'
        )
    expected = expected_differences()
    still_failing: set[str] = set()
    ok = True
    for mode in modes:
        failed = run_mode(
            package,
            mode,
            specs=specs,
            fast_formats=not args.no_fast_formats,
            tracing=args.live_tracing,
            extra=extra,
        )
        if failed is None:
            ok = False
            continue
        allowed = {} if mode == 'genkit' else expected
        unexpected = [t for t in failed if t not in allowed]
        listed = [t for t in failed if t in allowed]
        still_failing.update(listed)
        for test_id in listed:
            print(f'expected difference ({mode}): {test_id}: {allowed[test_id]}')
        for test_id in unexpected:
            print(f'UNEXPECTED FAILURE ({mode}): {test_id}')
        ok = ok and not unexpected
    if (stale := sorted(set(expected) - still_failing)) and any(m != 'genkit' for m in modes) and not extra:
        for test_id in stale:
            print(f'STALE expected difference (passes now, remove it): {test_id}')
        ok = False
    print('upstream suite: ' + ('OK' if ok else 'FAILED'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
