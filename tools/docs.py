"""`make docs`: the documentation site in _docs/ (an index, Getting started, Guides, and one API page per module).

nbdev's own site builder needs Quarto, which cannot be installed here. This runs nbdev's own notebook processors
(`nbdev.process.NBProcessor` with `FrontmatterProc`, `rm_export`, `hide_`, `clean_show_doc`, `add_links`, ...) and
renders the result with `jupyter nbconvert` instead of Quarto:

- library notebooks are found through nbdev's config (`nbs_path`) and their `#| default_exp`; each one is a page with
  its prose, examples and their committed outputs (nothing is re-executed), and, as nbdev's `add_show_docs` does, a
  `show_doc` entry (signature and docstring) for every name in the module's `__all__`, right after the cell that
  defines it, unless the notebook already calls `show_doc` on it. `show_doc` output is made at build time by
  importing the module; exported source (`#| export`, `#| exporti`) and `#| hide` cells are left out, and the Quarto
  cell options nbdev relies on (`#| echo: false`, `#| output: false`, `#| include: false`) are honoured;
- every markdown file in `nbs/guides/` is a guide page; the README's quick start is the index's Getting started.

Usage: python tools/docs.py [--out _docs] [--coverage]
"""

from __future__ import annotations

import argparse
import ast
import html
import importlib
import inspect
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nbformat
import yaml
from execnb.nbio import mk_cell, read_nb
from fastcore.docments import MarkdownRenderer, _fmt_sig, _show_param
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbformat.v4.rwbase import rejoin_lines
from nbdev.config import get_config
from nbdev.doclinks import NbdevLookup, _nbpath2html, nbglob
from nbdev.frontmatter import FrontmatterProc
from nbdev.process import NBProcessor, Processor, extract_directives
from nbdev.processors import (
    _default_exp,
    add_links,
    clean_magics,
    clean_show_doc,
    filter_stream_,
    hide_,
    hide_line,
    mv_exports,
    populate_language,
    rm_export,
    rm_header_dash,
    strip_ansi,
    strip_hidden_metadata,
)
from nbdev.showdoc import show_doc, showdoc_nm
from pygments.formatters import HtmlFormatter

ROOT = Path(__file__).resolve().parent.parent
EXPORT_DIRS = {'export', 'exports', 'exporti'}

SIG_WIDTH = 80  # where signatures break into lines (fastcore's maxline)


# ---------------------------------------------------------------- show_doc entries


def defined_names(source: str) -> list[str]:
    "Top-level names a cell defines (functions, classes, assignments), in order; `@patch` methods as `Class.method`."
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(showdoc_nm(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


def show_doc_calls(source: str) -> list[ast.Call]:
    "The top-level `show_doc(...)` calls in a cell's source."
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        n.value
        for n in tree.body
        if isinstance(n, ast.Expr)
        and isinstance(n.value, ast.Call)
        and isinstance(n.value.func, ast.Name)
        and n.value.func.id == 'show_doc'
        and n.value.args
    ]


def _visible(cell) -> bool:
    d = cell.directives_
    return not (d.keys() & {'hide'}) and d.get('include:') != ['false']


class add_api_docs(Processor):
    """nbdev's `add_show_docs`, driven by the module's `__all__`: a `show_doc` cell after the export cell defining each
    public name (and each `@patch` method), unless a visible cell already shows it; names no cell defines go last."""

    def __init__(self, nb, public: list[str]):
        super().__init__(nb)
        self.public = public

    def begin(self):
        cells = self.nb.cells
        shown = set()
        for c in cells:
            if c.cell_type == 'code' and _visible(c):
                shown |= {ast.unparse(call.args[0]) for call in show_doc_calls(c.source)}
        placed = set(shown)
        for c in reversed([c for c in cells if c.cell_type == 'code' and c.directives_.keys() & EXPORT_DIRS]):
            names = [n for n in defined_names(c.source) if n in self.public or ('.' in n and not n.startswith('_'))]
            new = [n for n in dict.fromkeys(names) if n not in shown]
            placed |= set(names)
            for i, nm in enumerate(new):
                sd = mk_cell(f'show_doc({nm})')
                sd.has_sd = True  # for nbdev's `mv_exports`
                cells.insert(c.idx_ + 1 + i, sd)
        rest = [n for n in self.public if n not in placed]
        if rest:
            cells.append(mk_cell('## Other exported names', 'markdown'))
            cells += [mk_cell(f'show_doc({nm})') for nm in rest]
        for i, c in enumerate(cells):
            c.idx_ = i
            c.setdefault('directives_', {})


_re_source = re.compile(r'^\[source\]\(([^)]*)\)\{[^}]*\}\s*$', re.M)


def _is_value(obj) -> bool:
    "A constant or an instance (not a function, class, module or method): `show_doc` would describe its type."
    return not (callable(obj) and (inspect.isroutine(obj) or inspect.isclass(obj))) and not inspect.ismodule(obj)


def _value_markdown(name: str, obj, comment: str) -> str:
    text = repr(obj)
    if re.fullmatch(r'<.* at 0x[0-9a-f]+>', text):  # a default repr says nothing but a memory address
        return f'### {name}\n\n```python\n{name}: {type(obj).__module__}.{type(obj).__qualname__}\n```' + (
            f'\n\n*{comment}*\n' if comment else '\n'
        )
    if len(text) > 300:
        text = text[:300] + ' …'
    doc = f'\n\n*{comment}*' if comment else ''
    return f'### {name}\n\n```python\n{name}: {type(obj).__name__} = {text}\n```{doc}\n'


def entry_html(md: str, anchor: str, kind: str, alias: str = '') -> str:
    "One API entry: fastcore's markdown (its Quarto link attributes turned into HTML) rendered by nbconvert."
    md = md.replace('---\n\n', '', 1) if md.startswith('---') else md

    def src(m):
        url = m.group(1)
        return '' if url.endswith('LNone') else f'<a class="source" href="{html.escape(url)}">source</a>\n'

    md = _re_source.sub(src, md)
    body = markdown2html_mistune(md)
    body = re.sub(
        r'<h(\d) id="[^"]*">(.*?)<a class="anchor-link" href="#[^"]*">',
        rf'<h\1>\2<a class="anchor-link" href="#{anchor}">',
        body,
        count=1,
    )
    extra = f'<span id="{html.escape(alias)}"></span>' if alias else ''
    return f'<section class="api {kind}" id="{html.escape(anchor)}">{extra}\n{body}\n</section>'


def own_doc(obj) -> str:
    "`obj`'s own docstring: not one a class inherits (pydantic's `BaseModel`'s) nor the one `@dataclass` makes up."
    if not inspect.isclass(obj):
        return inspect.getdoc(obj) or ''
    doc = vars(obj).get('__doc__') or ''
    return '' if doc.startswith(f'{obj.__name__}(') else inspect.cleandoc(doc)


def class_signature(cls, md: str) -> str:
    """fastcore writes a class's signature as `def Name(...)` from its `__init__`, which for a pydantic model is
    `**data`: write `class Name(...)` and, where `__init__` hides them, the parameters `inspect.signature` knows (a
    pydantic field's description as its comment, the way fastcore shows docments)."""
    md = md.replace('```python\ndef ', '```python\nclass ', 1)
    block = re.search(r'```python\n(.*?)\n```', md, re.S)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return md
    if not block or all(re.search(rf'\b{re.escape(n)}\b', block.group(1)) for n in params):
        return md
    fields = getattr(cls, 'model_fields', {})
    items = [(_show_param(p), getattr(fields.get(n), 'description', None) or '') for n, p in params.items()]
    sig = _fmt_sig(cls.__name__, items, '):', SIG_WIDTH, prefix='class')
    return md[: block.start(1)] + sig + md[block.end(1) :]


class EntryRenderer(MarkdownRenderer):
    """nbdev's `BasicMarkdownRenderer` (a heading, then fastcore's signature and docstring) without its GitHub source
    link: `git_url` names no public repository here, and finding the line costs a `NbdevLookup` per entry."""

    def _repr_markdown_(self):
        return f'{"#" * self.title_level} {self.nm}\n\n' + super()._repr_markdown_()


class render_show_docs(Processor):
    "nbdev's `exec_show_docs`, without a kernel: each `show_doc(...)` call is evaluated in the imported module."

    def __init__(self, nb, module, comments: dict[str, str], documented: set):
        super().__init__(nb)
        # fastcore breaks signatures at 110 characters; the page's code boxes hold about 90
        sd = partial(show_doc, renderer=partial(EntryRenderer, maxline=SIG_WIDTH))
        self.ns = {**vars(module), 'show_doc': sd}
        self.comments, self.documented = comments, documented

    def cell(self, cell):
        calls = show_doc_calls(cell.source) if cell.cell_type == 'code' and _visible(cell) else []
        outputs = []
        for call in calls:
            label = ast.unparse(call.args[0])
            try:
                obj = eval(label, self.ns)
                if _is_value(obj):
                    md, kind = _value_markdown(label, obj, self.comments.get(label, '')), 'value'
                else:
                    md, kind = _callable_markdown(call, obj, self.ns), 'callable'
                    if inspect.isclass(obj):
                        md = class_signature(obj, md)
                    if not own_doc(obj):  # else fastcore shows pydantic's BaseModel doc, or "Call self as a function."
                        md = md[: md.index('```', md.index('```python') + 9) + 3] + '\n'
            except Exception as e:  # keep the committed output: a page without it would be worse
                print(f'  {self.nb.path_}: show_doc({label}) failed: {type(e).__name__}: {e}', file=sys.stderr)
                return
            self.documented.add(label)
            # the anchor is the name; nbdev's doc links use its lower case, so that too where no other name has it
            alias = label.lower() if label.lower() != label and label.lower() not in self.ns else ''
            html_out = entry_html(md, label, kind, alias)
            outputs.append(nbformat.v4.new_output('display_data', data={'text/html': html_out}))
        if outputs:
            cell.outputs = outputs
            cell.directives_['echo:'] = ['false']
            cell.api_ = True


def _callable_markdown(call: ast.Call, obj, ns: dict) -> str:
    """`show_doc`'s markdown for a callable. An annotation imported only for type checkers (`if TYPE_CHECKING:`, to
    keep imports one way) is not a name of its module at run time: look it up in the other tsforge modules, put it
    into the function's globals for this build, and try again."""
    for _ in range(5):
        try:
            return eval(ast.unparse(call), ns)._repr_markdown_()
        except NameError as e:
            name, glb = (
                e.name,
                getattr(inspect.unwrap(obj), '__globals__', None)
                or getattr(sys.modules.get(getattr(obj, '__module__', ''), None), '__dict__', {}),
            )
            import importlib, pkgutil, tsforge

            mods = [importlib.import_module(f'tsforge.{m.name}') for m in pkgutil.iter_modules(tsforge.__path__)]
            found = next((getattr(m, name) for m in mods if name in vars(m)), None)
            if name is None or found is None or name in glb:
                raise
            glb[name] = found
    return eval(ast.unparse(call), ns)._repr_markdown_()


def value_comments(nb) -> dict[str, str]:
    "For `NAME = value  # comment` (or a comment line right above) in export cells: the comment, as `NAME`'s doc."
    out = {}
    for c in nb.cells:
        if c.cell_type != 'code' or not (extract_directives(c.copy(), remove=False).keys() & EXPORT_DIRS):
            continue
        lines = [x for x in c.source.splitlines() if not x.startswith('#|')]
        for i, line in enumerate(lines):
            m = re.match(r'^([A-Za-z]\w*)\s*(?::[^=]+)?=(?!=).*?(?:#\s*(.+))?$', line)
            if not m:
                continue
            comment = m.group(2) or ''
            j = i - 1
            while not comment and j >= 0 and lines[j].startswith('#'):
                comment = lines[j].lstrip('# ').strip() + (' ' + comment if comment else '')
                j -= 1
            if comment:
                out.setdefault(m.group(1), comment.strip())
    return out


# ---------------------------------------------------------------- notebooks -> pages


class split_title_cell(Processor):
    """nbdev's `FrontmatterProc` turns the first markdown cell with a `# title` into front matter and drops the cell:
    any prose in it after the title, `> summary` and `- key: value` lines goes to a cell of its own first."""

    def begin(self):
        cells = self.nb.cells
        i = next(
            (i for i, c in enumerate(cells) if c.cell_type == 'markdown' and re.search(r'^#\s', c.source, re.M)), None
        )
        if i is None:
            return
        head, rest = [], []
        for line in cells[i].source.splitlines():
            (head if re.match(r'^(#\s|>\s|-\s+\S.*:)', line) and not rest else rest).append(line)
        if '\n'.join(rest).strip():
            cells[i].source = '\n'.join(head)
            cells.insert(i + 1, mk_cell('\n'.join(rest).strip(), 'markdown'))
            for j, c in enumerate(cells):
                c.idx_ = j
                c.setdefault('directives_', {})


@dataclass
class Page:
    path: Path  # the notebook or markdown file
    html: str  # the page's file name in the site
    title: str
    summary: str = ''
    module: str = ''  # library module (`lib_name.default_exp`)
    public: list[str] = field(default_factory=list)
    documented: list[str] = field(default_factory=list)
    undocstringed: list[str] = field(default_factory=list)  # public callables without a docstring of their own


def quarto_options(cell):
    "The Quarto cell options nbdev leaves to Quarto (`clean_show_doc` adds some to the source): read and drop them."
    if cell.cell_type != 'code':
        return
    more = extract_directives(cell, remove=True)  # nbdev leaves Quarto's `#| key: value` lines in the source
    cell.directives_ = {**cell.directives_, **more}
    lines = cell.source.splitlines()
    while lines and re.match(r'\s*#\|', lines[0]):
        lines.pop(0)
    cell.source = '\n'.join(lines)


def page_cells(nb) -> list:
    "The processed cells as plain notebook cells, with Quarto's `include`/`echo`/`output` options applied."
    cells = []
    for c in nb.cells:
        if c.cell_type == 'raw':  # the front matter nbdev inserts
            continue
        quarto_options(c)
        d = getattr(c, 'directives_', {}) or {}
        if d.get('include:') == ['false']:
            continue
        if c.cell_type == 'markdown':
            if c.source.strip():
                cells.append(nbformat.v4.new_markdown_cell(c.source))
            continue
        outputs = [] if d.get('output:') == ['false'] else list(c.get('outputs', []))
        source = c.source.strip()
        if not source and not outputs:
            continue
        new = nbformat.v4.new_code_cell(source, outputs=[nbformat.from_dict(o) for o in outputs])
        new.metadata = nbformat.from_dict({'tags': list(c.metadata.get('tags', []))})
        if d.get('echo:') == ['false'] or not source:
            new.metadata['transient'] = {'remove_source': True}
        if getattr(c, 'api_', False):
            new.metadata['tags'].append('api')
        cells.append(new)
    return cells


def process(path: Path, module=None, documented: set | None = None) -> tuple[list, dict]:
    "Run nbdev's processors (and the API-entry ones for a library notebook) over the notebook at `path`."
    nb = read_nb(path)
    for c in nb.cells:  # nbdev's processors expect these
        c.setdefault('metadata', {})
    procs = [split_title_cell, FrontmatterProc, populate_language]
    if module is not None:  # instances (NBProcessor instantiates only classes): they share `nb`
        public = list(getattr(module, '__all__', []))
        procs += [add_api_docs(nb, public), render_show_docs(nb, module, value_comments(nb), documented)]
    procs += [
        strip_ansi,
        hide_line,
        filter_stream_,
        rm_header_dash,
        clean_show_doc,
        rm_export,
        clean_magics,
        hide_,
        add_links,
        mv_exports,
        strip_hidden_metadata,
    ]
    proc = NBProcessor(nb=nb, procs=procs)
    proc.process()
    return page_cells(proc.nb), getattr(proc.nb, 'frontmatter_', {})


# ---------------------------------------------------------------- HTML


CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; }
header.top { border-bottom: 1px solid var(--line); background: var(--soft); padding: .6rem 1.5rem; font-size: .95rem; }
header.top a { margin-right: 1.2rem; }
main { max-width: 58rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
h1 { font-size: 2rem; margin: 1.2rem 0 .3rem; } h2 { border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
h1, h2, h3, h4 { line-height: 1.25; } .lead { color: var(--muted); font-size: 1.1rem; margin-top: 0; }
code { font: .88em/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
  padding: .1em .3em; border-radius: 4px; }
pre { font: .85rem/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
  padding: .7rem .9rem; border-radius: 6px; overflow-x: auto; margin: .4rem 0; }
pre code { background: none; padding: 0; }
.anchor-link { visibility: hidden; margin-left: .3em; font-size: .8em; color: var(--muted); }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link, h4:hover .anchor-link { visibility: visible; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; border: 0; }
.output_html, .output_area { overflow-x: auto; }
th, td { border: 1px solid var(--line); padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--soft); }
img { max-width: 100%; height: auto; }
.cell { margin: .4rem 0; }
.input_area, .highlight { background: var(--soft); border-radius: 6px; }
.output_area pre { background: #fff; border: 1px solid var(--line); }
.output_stderr pre { background: #fff8e6; }
.prompt { display: none; }
section.api { border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 6px;
  padding: .2rem 1rem .3rem; margin: .5rem 0; background: #fff; }
section.api h3 { margin: .6rem 0 .3rem; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
section.api pre { white-space: pre-wrap; word-break: break-word; background: var(--soft); border: none; }
section.api .source { float: right; font-size: .85rem; margin-top: .7rem; }
section.api table { font-size: .85rem; }
section.value { border-left-color: #8250df; }
nav.toc { font-size: .9rem; background: var(--soft); border-radius: 6px; padding: .4rem 1rem; }
nav.toc ul { columns: 2; margin: .2rem 0; padding-left: 1.2rem; }
ul.pages li { margin: .4rem 0; } ul.pages a code { color: var(--accent); } .muted { color: var(--muted); }
"""


def page_html(title: str, body: str, summary: str = '', toc: str = '') -> str:
    lead = f'<p class="lead">{md_inline(summary)}</p>' if summary else ''
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · tsforge</title><link rel="stylesheet" href="style.css"></head>
<body>
<header class="top"><a href="index.html">tsforge documentation</a><a href="index.html#guides">Guides</a>\
<a href="index.html#api-reference">API reference</a></header>
<main>
<h1>{md_inline(title)}</h1>
{lead}
{toc}
{body}
</main>
</body></html>
"""


def md_inline(text: str) -> str:
    return re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(text))


def md_page(text: str) -> str:
    return markdown2html_mistune(text)


def link_fixer(pages: dict[str, str], cfg):
    "Links to notebooks, guides and the README (and nbdev doc links to this site's host) point at the pages."
    host = (cfg.get('doc_host', '') + '/' + cfg.get('doc_baseurl', '/').strip('/')).rstrip('/') + '/'

    def fix(m):
        url = m.group(2)
        if host != '/' and url.startswith(host):
            return f'{m.group(1)}"{url[len(host) :]}"'
        target, _, frag = url.partition('#')
        name = target.rsplit('/', 1)[-1]
        if '://' not in target and name in pages:
            return f'{m.group(1)}"{pages[name]}{"#" + frag if frag else ""}"'
        return m.group(0)

    return lambda text: re.sub(r'(href=)"([^"]*)"', fix, text)


def readme_quick_start(text: str) -> str:
    "The README's quick start section (the first heading naming quick start / getting started), else its intro."
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^(#+)\s+(.*)$', line)
        if m and re.search(r'quick\s*start|getting started', m.group(2), re.I):
            level, out = len(m.group(1)), []
            for nxt in lines[i + 1 :]:
                h = re.match(r'^(#+)\s', nxt)
                if h and len(h.group(1)) <= level:
                    break
                out.append(nxt)
            return '\n'.join(out)
    intro = re.split(r'^##\s', text, maxsplit=1, flags=re.M)[0]
    return re.sub(r'^#\s.*$', '', intro, count=1, flags=re.M)


def guide_pages(guides: Path) -> list[tuple[Page, str]]:
    "Every markdown file under `guides` (`index.md` first), with its title (front matter `title:` or first `# ...`)."
    if not guides.is_dir():
        return []
    paths = sorted(guides.glob('*.md'), key=lambda p: (p.stem != 'index', p.name))
    out = []
    for p in paths:
        text = p.read_text()
        fm = {}
        if m := re.match(r'^---\n(.*?)\n---\n', text, re.S):
            fm, text = (yaml.safe_load(m.group(1)) or {}), text[m.end() :]
        title = fm.get('title') if isinstance(fm, dict) else None
        if not title and (h := re.search(r'^#\s+(.+)$', text, re.M)):
            title = h.group(1).strip()
            text = text.replace(h.group(0), '', 1)
        summary = (fm.get('description') if isinstance(fm, dict) else '') or ''
        out.append((Page(p, f'guide-{p.stem}.html', title or p.stem.replace('_', ' ').capitalize(), summary), text))
    return out


def build(out: Path, guides_dir: Path | None = None) -> list[Page]:
    "Build the site in `out` (guides from `guides_dir`, default `nbs/guides`); returns the library pages."
    cwd = os.getcwd()
    os.chdir(ROOT)  # nbdev's config and doc links are read from the working directory
    try:
        return _build(Path(out).resolve(), guides_dir and Path(cwd, guides_dir))
    finally:
        os.chdir(cwd)


def _build(out: Path, guides_dir: Path | None) -> list[Page]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    cfg = get_config(path=ROOT)
    nbs = Path(cfg.nbs_path)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(tag_remover(), enabled=True)
    exporter.log.setLevel('ERROR')  # not a warning per figure without alt text

    library, jobs = [], []
    for p in sorted(nbglob(nbs, as_path=True)):
        nb = read_nb(p)
        exp = _default_exp(nb)
        if exp:
            library.append(Page(p, _nbpath2html(p.relative_to(nbs)).as_posix(), p.stem, module=f'{cfg.lib_name}.{exp}'))
        else:
            jobs.append(Page(p, f'job-{_nbpath2html(p.relative_to(nbs)).as_posix()}', p.stem))
    guides = guide_pages(guides_dir or nbs / 'guides')
    names = {p.path.name: p.html for p in library + jobs} | {'README.md': 'README.html'}
    names |= {g.path.name: g.html for g, _ in guides}
    fix = link_fixer(names, cfg)

    for page in library + jobs:
        module, documented = None, set()
        if page.module:
            module = importlib.import_module(page.module)
            page.public = list(getattr(module, '__all__', []))
        cells, fm = process(page.path, module, documented)
        page.title, page.summary = fm.get('title', page.title), fm.get('description', '')
        page.documented = [n for n in page.public if n in documented]
        if module is not None:
            objs = {n: getattr(module, n) for n in page.public if hasattr(module, n)}
            page.undocstringed = [n for n, o in objs.items() if not _is_value(o) and not own_doc(o)]
        nb = rejoin_lines(nbformat.v4.new_notebook(cells=cells))  # execnb keeps outputs as lists of lines
        body, _ = exporter.from_notebook_node(nb)
        toc = ''
        if page.module:
            links = ''.join(f'<li><a href="#{n}"><code>{html.escape(n)}</code></a></li>' for n in page.public)
            toc = f'<nav class="toc"><b>Module <code>{page.module}</code></b> · public names:<ul>{links}</ul></nav>'
        (out / page.html).write_text(fix(page_html(page.title, body, page.summary, toc)))

    lookup = NbdevLookup()  # `name` in a guide links to its entry, as nbdev's `add_links` does in notebooks
    for g, text in guides:
        (out / g.html).write_text(fix(page_html(g.title, md_page(lookup.linkify(text)), g.summary)))
    readme = (ROOT / 'README.md').read_text()
    (out / 'README.html').write_text(fix(page_html('README', md_page(re.sub(r'^#\s.*\n', '', readme, count=1)))))
    (out / 'style.css').write_text(CSS + HtmlFormatter(style='default').get_style_defs('.highlight'))

    def items(pages, show_module=False):
        rows = []
        for p in pages:
            summ = f'<br><span class="muted">{md_inline(p.summary)}</span>' if p.summary else ''
            if show_module:  # the module, the notebook's title where it says more, and the notebook
                title = '' if p.title == p.module.rsplit('.', 1)[-1] else f' — {md_inline(p.title)}'
                nb = f' <span class="muted">({p.path.relative_to(ROOT).as_posix()})</span>'
                rows.append(f'<li><a href="{p.html}"><code>{p.module}</code></a>{title}{nb}{summ}</li>')
            else:
                rows.append(f'<li><a href="{p.html}">{md_inline(p.title)}</a>{summ}</li>')
        return '<ul class="pages">' + '\n'.join(rows) + '</ul>'

    guide_list = items([g for g, _ in guides]) if guides else '<p class="muted">No guides yet.</p>'
    body = f"""<p class="lead">{md_inline(cfg.get('description', ''))}</p>
<h2 id="getting-started">Getting started</h2>
{md_page(readme_quick_start(readme))}
<p>More in the <a href="README.html">README</a>.</p>
<h2 id="guides">Guides</h2>
{guide_list}
<h2 id="api-reference">API reference</h2>
<p>One page per library module, in notebook order: prose, examples with their outputs, and the signature and
docstring of every public name.</p>
{items(library, show_module=True)}
<h2 id="jobs">Job notebooks</h2>
<p>Run by papermill; shown here with their committed outputs.</p>
{items(jobs)}"""
    index = page_html(cfg.get('title', cfg.lib_name), body)
    (out / 'index.html').write_text(fix(index))
    return library


def tag_remover():
    "Quarto's / Jupyter Book's cell tags: remove-cell, remove-input, remove-output (and the hide-* spellings)."
    from nbconvert.preprocessors import TagRemovePreprocessor

    return TagRemovePreprocessor(
        remove_cell_tags={'remove-cell', 'remove_cell', 'hide-cell'},
        remove_input_tags={'remove-input', 'remove_input', 'hide-input', 'hide_input'},
        remove_all_outputs_tags={'remove-output', 'remove_output', 'hide-output', 'hide_output'},
    )


def coverage_table(library: list[Page]) -> str:
    "Per module: names with an entry on its page / names in `__all__`, those missing, and those without a docstring."
    rows = [('module', 'page', 'documented', 'public', 'missing', 'no docstring')]
    for p in library:
        missing = ', '.join(n for n in p.public if n not in p.documented) or '-'
        rows.append((p.module, p.html, str(len(p.documented)), str(len(p.public)), missing, ', '.join(p.undocstringed)))
    total_doc, total = sum(len(p.documented) for p in library), sum(len(p.public) for p in library)
    rows.append(('total', '', str(total_doc), str(total), '', str(sum(len(p.undocstringed) for p in library))))
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    return '\n'.join('  '.join(c.ljust(w[i]) if i < 5 else c for i, c in enumerate(r)).rstrip() for r in rows)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', type=Path, default=ROOT / '_docs')
    ap.add_argument('--guides', type=Path, help='folder of markdown guides (default: nbs/guides)')
    ap.add_argument('--coverage', action='store_true', help='print documented / public names per module')
    args = ap.parse_args()
    out = args.out.resolve()
    if out.exists() and (out / 'index.html').exists():
        shutil.rmtree(out)
    lib = build(out, args.guides)
    if args.coverage:
        print(coverage_table(lib))
    print(f'{len(lib)} API pages, guides and the README rendered to {out} (open index.html there)')
