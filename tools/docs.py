"""`make docs`: render the notebooks (with their committed outputs) and README.md to a browsable HTML site in _docs/.

nbdev's own site builder needs Quarto, which cannot be installed here; this uses `jupyter nbconvert`'s HTML exporter.
Cells marked `#| hide` are left out and nbdev directives (`#| export`, ...) are dropped, as nbdev's site does.
Usage: python tools/docs.py [--out _docs]
"""

import argparse
import html
import re
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent


def doc_cells(nb):
    "The cells a reader sees: no raw front matter, no `#| hide` cells, code without nbdev directives."
    cells = []
    for c in nb.cells:
        src = c.source.lstrip()
        if c.cell_type == 'raw' or re.match(r'#\|\s*(hide|default_exp)\b', src):
            continue
        if c.cell_type == 'code':
            c.source = '\n'.join(line for line in c.source.splitlines() if not line.lstrip().startswith('#|')).strip()
            if not c.source and not c.get('outputs'):
                continue
        cells.append(c)
    nb.cells = cells
    return nb


def title_and_summary(nb) -> tuple[str, str]:
    "The notebook's `# title` and `> summary` lines (nbdev's convention)."
    md = next((c.source for c in nb.cells if c.cell_type == 'markdown'), '')
    title = re.search(r'^#\s+(.+)$', md, re.M)
    summary = re.search(r'^>\s*(.+)$', md, re.M)
    return (title.group(1).strip() if title else ''), (summary.group(1).strip() if summary else '')


def md_links(text: str) -> str:
    "Point links between notebooks (and to README.md) at their rendered pages."
    return re.sub(r'\]\((?:\.\./)?(?:nbs/)?([\w.-]+)\.(ipynb|md)([#)])', r'](\1.html\3', text)


def render(nb, exporter: HTMLExporter, title: str) -> str:
    for c in nb.cells:
        if c.cell_type == 'markdown':
            c.source = md_links(c.source)
    body, _ = exporter.from_notebook_node(nb, resources={'metadata': {'name': title}})
    nav = '<p style="margin:1em 2em"><a href="index.html">tsforge documentation</a></p>'
    return re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav, body, count=1)


def main(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name='lab')
    modules, jobs = [], []
    for path in sorted((ROOT / 'nbs').glob('*.ipynb')):
        nb = nbformat.read(path, as_version=4)
        is_job = not path.name[:2].isdigit()
        title, summary = title_and_summary(nb)
        (out / f'{path.stem}.html').write_text(render(doc_cells(nb), exporter, title or path.stem))
        (jobs if is_job else modules).append((path.stem, title or path.stem, summary))
    readme = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell((ROOT / 'README.md').read_text())])
    (out / 'README.html').write_text(render(readme, exporter, 'tsforge README'))

    def code(text: str) -> str:
        return re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(text))

    def items(rows):
        return '\n'.join(
            f'<li><a href="{stem}.html"><code>{stem}</code></a>: <b>{code(t)}</b>{" — " + code(s) if s else ""}</li>'
            for stem, t, s in rows
        )

    index = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tsforge documentation</title>
<style>body {{font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.5}}
code {{background: #f3f3f3; padding: 0 .2em}}</style></head>
<body>
<h1>tsforge</h1>
<p>Research-to-production time-series forecasting. Start with the <a href="README.html">README</a>
(quick start, configuration, models, tracking, serving); each library module is one notebook below, with
its API, examples on real data and their outputs.</p>
<h2>Library modules</h2>
<ul>
{items(modules)}
</ul>
<h2>Job notebooks (papermill)</h2>
<ul>
{items(jobs)}
</ul>
</body></html>
"""
    (out / 'index.html').write_text(index)
    print(f'{len(modules)} modules, {len(jobs)} jobs and the README rendered to {out}/ (open {out}/index.html)')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', type=Path, default=ROOT / '_docs')
    main(ap.parse_args().out)
