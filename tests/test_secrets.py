"""No secret reaches the store (issue 16): a config value taken from the environment with `${oc.env:...}` is masked
everywhere a job logs the config; the whole store (database, artifacts, the bundle, the executed notebook) is then
searched for the secret."""

import os, shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import papermill

pytestmark = pytest.mark.slow

SECRET = 'sekrit-d1r-7c4f2a'  # the secret part of the data folder's path


def hits(folder: Path, needle: str) -> list[str]:
    "Files under `folder` whose bytes contain `needle` (the SQLite database included)."
    out = []
    for p in folder.rglob('*'):
        if p.is_file() and needle.encode() in p.read_bytes():
            out.append(str(p.relative_to(folder)))
    return out


def test_secret_from_environment_never_reaches_the_store(tmp_path):
    data = tmp_path / SECRET
    data.mkdir()
    shutil.copy(Path(os.environ['TSFORGE_DATA_DIR']) / 'ETTh1.csv', data / 'ETTh1.csv')
    home = tmp_path / 'store'
    env = {'TSFORGE_HOME': str(home), 'TSFORGE_SECRET_DATA': str(data)}
    overrides = [
        'model=naive',
        'input_length=24',
        'horizon=24',
        'data.dataset=null',
        "data.path='${oc.env:TSFORGE_SECRET_DATA}/ETTh1.csv'",
        'registry.model_name=tsforge-secret',
    ]
    out = tmp_path / 'out.ipynb'
    r = papermill('train.ipynb', out, 'etth1', overrides, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

    uri = f'sqlite:///{home / "mlflow.db"}'
    client = MlflowClient(uri, uri)
    mv = client.get_model_version_by_alias('tsforge-secret', 'champion')
    run = client.get_run(mv.run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.params['data.path'] == '${oc.env:TSFORGE_SECRET_DATA}/ETTh1.csv'
    names = [f.path for f in client.list_artifacts(mv.run_id)]
    assert 'notebook' in names and 'config.yaml' in names
    assert hits(home, SECRET) == []
    assert hits(home, str(data)) == []
