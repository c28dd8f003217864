"""`make docs`: every notebook and the README rendered to HTML, an index linking each of them, hidden cells left out."""

import re
import subprocess
import sys

from conftest import ROOT


def test_docs_site(tmp_path):
    out = tmp_path / '_docs'
    r = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'docs.py'), '--out', str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-2000:]
    index = (out / 'index.html').read_text()
    links = set(re.findall(r'href="([^"]+)\.html"', index))
    notebooks = {p.stem for p in (ROOT / 'nbs').glob('*.ipynb')}
    assert notebooks | {'README'} <= links, notebooks - links
    for name in notebooks | {'README'}:
        assert (out / f'{name}.html').stat().st_size > 1000
    split = (out / '02_split.html').read_text()
    assert 'rolling_origin_folds' in split and 'data:image/png' in split  # show_doc output and a figure
    assert '#| export' not in split and 'assert len(origins' not in split  # directives and #| hide cells left out
