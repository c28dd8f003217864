"""Ray Serve: the same FastAPI app on two replicas of a real local Ray, answering like uvicorn does."""
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from conftest import free_port
from tsforge.config import load_config
from tsforge.pipeline import prepare
from tsforge.tracking import tracking_uri


@pytest.fixture(scope='module')
def ray_serve_url(ray_local, trained):
    from ray import serve
    from tsforge.serve import ray_app
    port = free_port()
    serve.start(http_options={'host': '127.0.0.1', 'port': port})
    try:
        serve.run(ray_app({'model': 'models:/tsforge-etth1@champion', 'num_replicas': 2, 'num_cpus': 0.25,
                           'tracking_uri': tracking_uri()}), name='tsforge', route_prefix='/')
        yield f'http://127.0.0.1:{port}'
    finally:
        serve.shutdown()


def test_ray_serve_parity_and_errors(ray_serve_url, trained):
    url = ray_serve_url
    assert requests.get(f'{url}/ready', timeout=30).status_code == 200
    assert requests.get(f'{url}/metadata', timeout=30).json()['version'] == trained['version']
    prep = prepare(load_config('etth1'))
    pred = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=trained['run_id'], artifact_path='predictions.parquet'))
    for o in prep.origins('test')[[0, 1000, 2784]]:
        h = prep.frame.iloc[o - 336:o].copy(); h['date'] = h['date'].astype(str)
        r = requests.post(f'{url}/predict', json={'history': h.to_dict(orient='records')}, timeout=60)
        assert r.status_code == 200, r.text
        exp = pred[pred.origin == prep.frame.date.iloc[o - 1]].sort_values('step').y_pred.to_numpy()
        assert np.abs(pd.DataFrame(r.json()['forecast']).OT.to_numpy() - exp).max() < 1e-6
    bad = requests.post(f'{url}/predict', json={'history': h.to_dict(orient='records')[:10]}, timeout=60)
    assert bad.status_code == 422 and 'at least 336' in bad.json()['detail']
