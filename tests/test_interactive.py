"""The train notebook run as JupyterLab runs it ("Run All" in a kernel whose cwd is nbs/, no papermill): it tracks the
run but registers nothing and leaves `champion` where it was unless `register = True`; it says so in words."""

import nbformat
import pytest
from mlflow import MlflowClient
from nbclient import NotebookClient

from conftest import ROOT

pytestmark = pytest.mark.slow  # real processes (jobs killed, kernels, servers)


def run_all(params: str = '') -> str:
    "Run nbs/train.ipynb top to bottom in a fresh kernel with cwd nbs/ (as JupyterLab does); return its text output."
    nb = nbformat.read(ROOT / 'nbs' / 'train.ipynb', as_version=4)
    if params:  # what a user does: edit the parameters cell
        cell = next(c for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
        cell.source += '\n' + params
    NotebookClient(nb, timeout=600, resources={'metadata': {'path': str(ROOT / 'nbs')}}).execute()
    return '\n'.join(
        o.get('text', '')
        for c in nb.cells
        if c.cell_type == 'code'
        for o in c.get('outputs', [])
        if o.output_type == 'stream'
    )


def test_run_all_outside_papermill_moves_no_alias(own_store):
    client = MlflowClient()
    # opting in: register = True registers a version and points champion at it
    out = run_all('register = True')
    assert 'registered: tsforge-etth1 version 1; alias @champion moved to it' in out, out
    assert str(client.get_model_version_by_alias('tsforge-etth1', 'champion').version) == '1'
    # the default, as JupyterLab's Run All runs it: tracked, not registered, champion untouched
    out = run_all()
    assert (
        'not registered: no version of tsforge-etth1 was created and @champion did not move (still on version 1)' in out
    )
    assert 'because this is an interactive run, not a papermill job' in out and 'register = True' in out
    assert 'notebook not logged' in out and 'papermill' in out and 'logged None' not in out
    assert 'interactive run (not papermill): tracks the run only' in out
    assert [str(v.version) for v in client.search_model_versions("name='tsforge-etth1'")] == ['1']
    assert str(client.get_model_version_by_alias('tsforge-etth1', 'champion').version) == '1'
    exp = client.get_experiment_by_name('tsforge')
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {'FINISHED'}
    assert runs[0].data.params['registry.enabled'] in ('False', 'false')  # the run records that it was not registered
