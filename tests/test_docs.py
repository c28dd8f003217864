"""`make docs`: an index (Getting started, Guides, API reference), a guide page per markdown file, and one API page per
library module with every public name's signature and docstring and none of the exported source."""

import functools
import html
import importlib
import importlib.util
import inspect
import json
import re
import sys

import pytest

from conftest import ROOT

NBS = ROOT / 'nbs'


def load_builder():
    "tools/docs.py as a module (built in this process: the library modules are imported once)."
    if 'tsforge_docs_builder' not in sys.modules:
        spec = importlib.util.spec_from_file_location('tsforge_docs_builder', ROOT / 'tools' / 'docs.py')
        sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules['tsforge_docs_builder']


def library_notebooks() -> list[tuple[str, str, dict]]:
    "(module, page, notebook json) of every library notebook: the ones with a `#| default_exp`."
    out = []
    for p in sorted(NBS.glob('*.ipynb')):
        nb = json.loads(p.read_text())
        src = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code')
        if m := re.search(r'^#\|\s*default_exp\s+(\S+)', src, re.M):
            page = re.sub(r'^\d+[a-zA-Z0-9]*_', '', p.stem.lower()) + '.html'  # nbdev's page name
            out.append((f'tsforge.{m.group(1)}', page, nb))
    return out


def text_of(page: str) -> str:
    "What a reader sees: tags dropped, entities decoded."
    return html.unescape(re.sub(r'<[^>]+>', '', page))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('docs')
    guides = tmp / 'guides'
    guides.mkdir()
    (guides / 'index.md').write_text('# Start here\n\nRead [serving](serving.md) and the [README](../../README.md).\n')
    (guides / 'serving.md').write_text('---\ntitle: Serving a model\n---\n\nThe server, step by step.\n')
    builder = load_builder()
    library = builder.build(tmp / '_docs', guides)
    return tmp / '_docs', library, builder.coverage_table(library)


def test_every_public_name_has_its_signature(site):
    out, _, _ = site
    for module, page, _ in library_notebooks():
        mod = importlib.import_module(module)
        text = (out / page).read_text()
        for name in mod.__all__:
            m = re.search(rf'<section class="api[^"]*" id="{re.escape(name)}">(.*?)</section>', text, re.S)
            assert m, f'{module}.{name} has no entry on {page}'
            assert len(re.findall(rf'<section class="api[^"]*" id="{re.escape(name)}">', text)) == 1, (module, name)
            entry = text_of(m.group(1))
            assert name in entry, (module, name)
            obj = getattr(mod, name)
            if not (inspect.isroutine(obj) or inspect.isclass(obj)):
                continue
            try:
                params = [p for p in inspect.signature(obj).parameters if p not in ('self', 'cls')]
            except (TypeError, ValueError):
                continue
            missing = [p for p in params if not re.search(rf'\b{re.escape(p)}\b', entry)]
            assert not missing, f'{module}.{name}: parameters {missing} not in its entry'
            own = (vars(obj).get('__doc__') if inspect.isclass(obj) else obj.__doc__) or ''
            if (
                doc := '' if own.startswith(f'{name}(') else inspect.cleandoc(own)
            ):  # its first words (markdown may change the punctuation around them)
                words = ' '.join(re.findall(r'\w+', doc.splitlines()[0])[:6])
                assert words in ' '.join(re.findall(r'\w+', entry)), (module, name, words)


def test_exported_and_hidden_source_is_not_on_the_pages(site):
    out, _, _ = site
    for module, page, nb in library_notebooks():
        mod = importlib.import_module(module)
        docs = '\n'.join(inspect.getdoc(o) or '' for o in vars(mod).values())
        hidden, shown = [], []
        for c in nb['cells']:
            src = ''.join(c['source'])
            is_hidden = c['cell_type'] == 'code' and re.match(r'\s*#\|\s*(export|exporti|hide)\s*$', src, re.M)
            (hidden if is_hidden else shown).append(src + json.dumps(c.get('outputs', [])))
        shown_text = '\n'.join(shown)
        lines = {
            line.strip()
            for src in hidden
            for line in src.split('\n')
            if len(line.strip()) >= 25
            and not re.match(r'(def |class |async def |@|#|"|\'|\)|\])', line.strip())
            and line.strip() not in shown_text
            and line.strip() not in docs
        }
        assert lines, f'{page}: no line to check'
        seen = text_of((out / page).read_text())
        leaked = [line for line in lines if line in seen]
        assert not leaked, f'{page} shows exported or hidden source: {leaked[:3]}'
        assert '#| export' not in seen and '#| hide' not in seen


def test_index_links_getting_started_guides_and_api_pages(site):
    out, library, coverage = site
    index = (out / 'index.html').read_text()
    for anchor in ('getting-started', 'guides', 'api-reference'):
        assert f'id="{anchor}"' in index
    assert 'make demo' in text_of(index)  # the README's quick start
    links = re.findall(r'href="([^"#]+)"', index)
    assert {'guide-index.html', 'guide-serving.html', 'README.html'} <= set(links)
    pages = [page for _, page, _ in library_notebooks()]
    api = [link for link in links if link in pages]
    assert api == pages  # one API page per module, in notebook order
    assert 'Serving a model' in index and 'Start here' in index
    guide = (out / 'guide-index.html').read_text()
    assert 'href="guide-serving.html"' in guide and 'href="README.html"' in guide
    for page in pages + ['guide-serving.html', 'README.html']:
        assert 'href="index.html"' in (out / page).read_text()  # the way back
    assert any('data:image/png' in (out / p).read_text() for p in pages)  # figures from the committed outputs
    assert [(p.module, p.html) for p in library] == [(m, p) for m, p, _ in library_notebooks()]
    assert all(p.documented == p.public for p in library), coverage


def test_no_guides_folder_is_no_guides(tmp_path):
    builder = load_builder()
    assert builder.guide_pages(tmp_path / 'missing') == []
    (tmp_path / 'empty').mkdir()
    assert builder.guide_pages(tmp_path / 'empty') == []


def test_show_doc_outputs_are_current():
    """Every `show_doc(x)` cell's kept output shows x's current docstring (its first line), not a stale one, and its
    source link points at the line where x is defined now."""
    stale = []
    for module, _, nb in library_notebooks():
        mod = importlib.import_module(module)
        for c in nb['cells']:
            m = re.fullmatch(r'show_doc\(([\w.]+)\)', ''.join(c['source']).strip())
            if c['cell_type'] != 'code' or not m:
                continue
            head, *rest = m.group(1).split('.')
            obj = functools.reduce(lambda o, a: getattr(o, a, None), rest, vars(mod).get(head))
            first = next(iter((inspect.getdoc(obj) or '').splitlines()), '') if obj is not None else ''
            shown = ' '.join(''.join(o.get('data', {}).get('text/markdown', [])) for o in c.get('outputs', []))
            if not first or first.rstrip() not in shown:
                stale.append(f'{module}: show_doc({m.group(1)})')
                continue
            # the source link: the file and line where the object is defined now
            src = inspect.unwrap(getattr(obj, 'fget', obj))
            where = (f'tsforge/{inspect.getsourcefile(src).rsplit("/", 1)[-1]}', str(inspect.getsourcelines(src)[1]))
            link = re.search(r'/(tsforge/\w+\.py)#L(\d+)', shown)
            if link and link.groups() != where:
                stale.append(f'{module}: show_doc({m.group(1)}) links {":".join(link.groups())}, not {":".join(where)}')
    assert not stale, 'show_doc outputs to re-run (stale or missing): ' + ', '.join(stale)
