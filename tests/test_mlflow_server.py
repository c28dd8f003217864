"""The client/server path: a real `mlflow server` on 127.0.0.1 (one worker), the train job logging to it through
MLFLOW_TRACKING_URI, and uvicorn serving the model it registered."""

import os, subprocess

import pytest
import requests
from mlflow import MlflowClient

from conftest import ROOT, free_port, mlflow_server_at, papermill, stop, uvicorn_cmd, wait_http
from tsforge.config import load_config
from tsforge.prepare import prepare

pytestmark = pytest.mark.slow  # real processes (jobs killed, kernels, servers)


@pytest.fixture(scope='module')
def mlflow_server(tmp_path_factory):
    with mlflow_server_at(tmp_path_factory.mktemp('mlflow-server'), timeout=180) as url:
        yield url


def test_train_logs_to_server_and_serving_loads_from_it(mlflow_server, tmp_path):
    env = {'MLFLOW_TRACKING_URI': mlflow_server}
    r = papermill(
        'train.ipynb',
        tmp_path / 'out.ipynb',
        'etth1',
        ['model=linear', 'horizon=24', 'registry.model_name=tsforge-remote'],
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    mv = client.get_model_version_by_alias('tsforge-remote', 'champion')
    run = client.get_run(mv.run_id)
    assert run.info.status == 'FINISHED' and run.data.metrics['test_windows'] == 2857
    assert run.info.artifact_uri.startswith('mlflow-artifacts:')
    names = [f.path for f in client.list_artifacts(mv.run_id)]
    assert 'predictions.parquet' in names and 'notebook' in names

    port = free_port()
    proc = subprocess.Popen(
        uvicorn_cmd(port),
        cwd=ROOT,
        env={**os.environ, **env, 'TSFORGE_MODEL': 'models:/tsforge-remote@champion'},
    )
    try:
        url = f'http://127.0.0.1:{port}'
        wait_http(f'{url}/ready', proc)
        prep = prepare(load_config('etth1'))
        o = int(prep.origins('test')[0])
        h = prep.frame.iloc[o - 336 : o].copy()
        h['date'] = h['date'].astype(str)
        res = requests.post(f'{url}/predict', json={'history': h.to_dict(orient='records')})
        assert res.status_code == 200 and len(res.json()['forecast']) == 24
        assert res.json()['model']['version'] == mv.version
    finally:
        stop(proc)
