"""The deployment layout without a shared disk: an MLflow server on a real PostgreSQL (pgserver) with proxied artifacts
(`--artifacts-destination`, clients see `mlflow-artifacts:`), the train job registering through it, and a plain server
started from another working directory, with no store path, loading the model through the tracking server only.
tests/test_multinode.py adds the two-node Ray cluster to this layout."""

import os, subprocess

import requests
from mlflow import MlflowClient

from conftest import free_port, papermill, stop, uvicorn_cmd, wait_http
from tsforge.config import load_config
from tsforge.prepare import prepare


def history_body(horizon=24) -> dict:
    "A /predict body: the 336 etth1 rows before row 2000."
    prep = prepare(load_config('etth1', [f'horizon={horizon}']))
    h = prep.frame.iloc[2000 - 336 : 2000][['date', 'OT']].copy()
    h['date'] = h['date'].astype(str)
    return {'history': h.to_dict(orient='records')}


def test_train_registers_through_server_and_a_server_elsewhere_loads_it(mlflow_pg, tmp_path):
    url, artifacts = mlflow_pg.url, mlflow_pg.artifacts
    env = {'MLFLOW_TRACKING_URI': url}
    r = papermill(
        'train.ipynb',
        tmp_path / 'out.ipynb',
        'etth1',
        ['model=linear', 'horizon=24', 'registry.model_name=pg-model'],
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    mv = client.get_model_version_by_alias('pg-model', 'champion')
    assert client.get_run(mv.run_id).info.artifact_uri.startswith('mlflow-artifacts:')
    assert any(artifacts.rglob('MLmodel'))  # the artifacts live where only the server looks

    elsewhere = tmp_path / 'elsewhere'  # no project, no store, no path to the artifact folder
    elsewhere.mkdir()
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(('TSFORGE_HOME', 'MLFLOW_'))}
    proc = subprocess.Popen(
        uvicorn_cmd(port),
        cwd=elsewhere,
        env={**clean, **env, 'TSFORGE_MODEL': 'models:/pg-model@champion'},
    )
    try:
        srv = f'http://127.0.0.1:{port}'
        wait_http(f'{srv}/ready', proc, timeout=180)
        a = requests.post(f'{srv}/predict', json=history_body(), timeout=60)
        assert a.status_code == 200, a.text
        assert a.json()['model']['version'] == mv.version and len(a.json()['forecast']) == 24
    finally:
        stop(proc)
