"""The repository as a newcomer receives it: no path of one machine in any tracked file, a short README with the
two-command quick start, and relative links in the README and the guides that lead to files of the repository."""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

README_MAX_BYTES = 12 * 1024
# Temporary folders of a test run or a Python session (built from parts so that this file does not contain them).
TEMP_PREFIXES = ['/tmp' + '/tmp', '/tmp' + '/pytest-', '/private' + '/var/folders']


def tracked_files() -> list[Path]:
    "Every file git tracks in the checkout (those deleted from the working tree left out)."
    try:
        out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f'not a git checkout: {e}')
    return [p for p in (ROOT / f for f in out.decode().split('\0') if f) if p.is_file()]


def machine_prefixes() -> list[str]:
    "The absolute folder that holds the checkout (with its trailing slash), as resolved and as written, if different."
    prefixes = {str(ROOT.parent).rstrip('/') + '/', str(Path(str(ROOT)).absolute().parent).rstrip('/') + '/'}
    return sorted(p for p in prefixes if p != '/')


def find(needles: list[str]) -> list[str]:
    "`file:line: needle` for each line of a tracked file that contains one of the needles."
    hits = []
    for path in tracked_files():
        text = path.read_bytes().decode('utf-8', errors='replace')
        if not any(n in text for n in needles):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            for n in needles:
                if n in line:
                    hits.append(f'{path.relative_to(ROOT)}:{i}: {n}')
    return hits


def test_no_path_of_this_machine_in_tracked_files():
    hits = find(machine_prefixes())
    assert not hits, 'tracked files name the folder that holds this checkout:\n' + '\n'.join(hits[:50])


def test_no_temp_paths_in_tracked_files():
    hits = find(TEMP_PREFIXES)
    assert not hits, 'tracked files name temporary folders:\n' + '\n'.join(hits[:50])


def test_readme_is_a_short_front_door():
    readme = (ROOT / 'README.md').read_bytes()
    assert len(readme) <= README_MAX_BYTES, f'README.md is {len(readme):,} bytes; at most {README_MAX_BYTES:,}'
    text = readme.decode()
    assert 'make demo' in text and 'make test' in text, 'README.md: the quick start is `make demo` and `make test`'


def guides() -> list[Path]:
    return sorted((ROOT / 'nbs' / 'guides').glob('*.md'))


def test_guides_have_one_title_first():
    assert guides(), 'nbs/guides/*.md: no guides'
    for g in guides():
        lines = g.read_text().splitlines()
        assert lines and re.match(r'# \S', lines[0]), f'{g.relative_to(ROOT)}: the first line is its `# Title`'
        assert sum(bool(re.match(r'# ', ln)) for ln in strip_code(g.read_text()).splitlines()) == 1, (
            f'{g.relative_to(ROOT)}: one `# Title` only'
        )


def strip_code(text: str) -> str:
    "Markdown without fenced code blocks and inline code spans, where `[x](y)` is not a link."
    text = re.sub(r'^(```|~~~).*?^\1[^\n]*$', '', text, flags=re.M | re.S)
    return re.sub(r'(`+)(?!`).*?(?<!`)\1(?!`)', '', text, flags=re.S)


LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
REF_DEF = re.compile(r'^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$', re.M)
SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


def links(md: Path) -> list[str]:
    text = strip_code(md.read_text())
    return LINK.findall(text) + REF_DEF.findall(text) + re.findall(r'<a\s[^>]*href="([^"]+)"', text)


def test_relative_links_in_readme_and_guides_resolve():
    broken = []
    for md in [ROOT / 'README.md', *guides()]:
        for target in links(md):
            if SCHEME.match(target) or target.startswith('#'):
                continue  # a web address, or an anchor on the same page
            where = f'{md.relative_to(ROOT)}: ({target})'
            if target.startswith('/'):
                broken.append(f'{where}: absolute; links are relative')
                continue
            path = (md.parent / target.split('#', 1)[0].split('?', 1)[0]).resolve()
            if not path.is_relative_to(ROOT.resolve()):
                broken.append(f'{where}: outside the repository')
            elif not path.exists():
                broken.append(f'{where}: no such file')
    assert not broken, 'relative links that lead nowhere:\n' + '\n'.join(broken)
