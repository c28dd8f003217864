"""Ray Serve: the same app on two replicas of a real local Ray, batching concurrent forecasts, answering like uvicorn
does, and listening on loopback only. The throughput-optimised mode (replicas answering on ports of their own) runs on
the two-node cluster of tests/test_multinode.py."""

import ipaddress, os, socket
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from tsforge.config import load_config
from tsforge.prepare import prepare
from tsforge.store import tracking_uri


def _is_loopback(host):
    ip = ipaddress.ip_address(host.split('%')[0])
    if getattr(ip, 'ipv4_mapped', None):
        ip = ip.ipv4_mapped
    return ip.is_loopback


def non_loopback_listeners(root_pid):
    "Listening TCP sockets and unconnected UDP sockets of `root_pid` and its descendants not bound to loopback."
    root, bad = psutil.Process(root_pid), []
    for p in [root, *root.children(recursive=True)]:
        try:
            conns, name = p.net_connections(kind='inet'), p.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if (c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr)) and not _is_loopback(
                c.laddr.ip
            ):
                bad.append((c.laddr.ip, c.laddr.port, p.pid, name))
    return sorted(set(bad))


@pytest.fixture(scope='module')
def ray_serve_url(serve_port, trained):
    from ray import serve
    from tsforge.ray_serve import ray_app

    try:
        serve.run(
            ray_app(
                {
                    'model': 'models:/tsforge-etth1@champion',
                    'num_replicas': 2,
                    'num_cpus': 0.25,
                    'tracking_uri': tracking_uri(),
                    'max_batch_size': 8,
                    'batch_wait_timeout_s': 0.01,
                }
            ),
            name='tsforge',
            route_prefix='/',
        )
        yield f'http://127.0.0.1:{serve_port}'
    finally:
        serve.delete('tsforge')


def test_ray_serve_parity_batching_and_errors(ray_serve_url, trained):
    url = ray_serve_url
    assert requests.get(f'{url}/ready', timeout=30).status_code == 200
    assert requests.get(f'{url}/metadata', timeout=30).json()['version'] == trained['version']
    prep = prepare(load_config('etth1'))
    pred = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=trained['run_id'], artifact_path='predictions.parquet')
    )
    origins = prep.origins('test')[np.linspace(0, 2784, 24).astype(int)]

    def one(o):
        h = prep.frame.iloc[o - 336 : o].copy()
        h['date'] = h['date'].astype(str)
        r = requests.post(f'{url}/predict', json={'history': h.to_dict(orient='records')}, timeout=60)
        assert r.status_code == 200, r.text
        exp = pred[pred.origin == prep.frame.date.iloc[o - 1]].sort_values('step').y_pred.to_numpy()
        return np.abs(pd.DataFrame(r.json()['forecast']).OT.to_numpy() - exp).max()

    with ThreadPoolExecutor(12) as ex:  # concurrent requests: a replica forecasts them in batches
        errs = list(ex.map(one, origins))
    assert max(errs) < 1e-6
    h = prep.frame.iloc[100:110].copy()
    h['date'] = h['date'].astype(str)
    bad = requests.post(f'{url}/predict', json={'history': h.to_dict(orient='records')}, timeout=60)
    assert bad.status_code == 422 and 'at least 336' in bad.json()['detail']
    assert 'tsforge_requests_total' in requests.get(f'{url}/metrics', timeout=30).text


def test_ray_serve_bands_match_the_plain_server(ray_serve_url, trained):
    """`levels` through Ray Serve: concurrent requests with different levels (batched together) answer the same band
    columns as the model's pyfunc and the run's predictions, to 1e-6."""
    from tsforge.bundle import load_model

    model = load_model('models:/tsforge-etth1@champion')
    assert model.levels == [80.0, 95.0]
    prep = prepare(load_config('etth1'))
    pred = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=trained['run_id'], artifact_path='predictions.parquet')
    )
    origins = prep.origins('test')[np.linspace(0, 2784, 12).astype(int)]
    asks = [[80, 95], [95], None, [80]] * 3

    def one(args):
        o, levels = args
        h = prep.frame.iloc[o - 336 : o].copy()
        h['date'] = h['date'].astype(str)
        body = {'history': h.to_dict(orient='records'), **({'levels': levels} if levels else {})}
        r = requests.post(f'{ray_serve_url}/predict', json=body, timeout=60)
        assert r.status_code == 200, r.text
        fc = pd.DataFrame(r.json()['forecast'])
        cols = [f'OT_{s}_{lv}' for lv in levels or [] for s in ('lo', 'hi')]
        assert list(fc.columns) == ['date', 'OT', *cols]
        exp = model.forecast(h, levels=levels)  # the pyfunc's answer
        run = pred[pred.origin == prep.frame.date.iloc[o - 1]].sort_values('step')
        err = [np.abs(fc[c].to_numpy() - exp[c].to_numpy()).max() for c in ['OT', *cols]]
        err += [np.abs(fc[c].to_numpy() - run[c[3:]].to_numpy()).max() for c in cols]  # OT_lo_80 -> lo_80
        return max(err)

    with ThreadPoolExecutor(6) as ex:
        errs = list(ex.map(one, zip(origins.tolist(), asks)))
    assert max(errs) < 1e-6, errs
    h = prep.frame.iloc[2000 - 336 : 2000].copy()
    h['date'] = h['date'].astype(str)
    r = requests.post(f'{ray_serve_url}/predict', json={'history': h.to_dict(orient='records'), 'levels': [90]})
    assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'levels'


def test_ray_listens_on_loopback_only(ray_serve_url):
    "Every socket Ray and Serve opened (GCS, raylet, workers, proxy, replicas' gRPC) is bound to loopback."
    assert requests.get(f'{ray_serve_url}/health', timeout=30).status_code == 200
    assert non_loopback_listeners(os.getpid()) == []


def test_tracking_uri_with_credentials_is_refused_without_ray():
    "Ray would keep the URI, password included, in the deployment's config: refused before Ray is touched."
    import ray
    from tsforge.ray_serve import ray_app

    started = ray.is_initialized()  # a session of another test may be up; ray_app must not start one
    for uri in ('http://alice:Pw@Secret42@127.0.0.1:5000', 'postgresql://u:pw@db/mlflow', 'https://tok3n@host'):
        with pytest.raises(ValueError, match='carries credentials.*MLFLOW_TRACKING_PASSWORD') as e:
            ray_app({'model': 'models:/m@champion', 'tracking_uri': uri})
        assert 'Secret42' not in str(e.value) and 'pw@' not in str(e.value) and 'tok3n' not in str(e.value)
    assert ray.is_initialized() == started


def test_replica_without_a_live_model_is_unhealthy():
    "check_health raises while no model is live (Ray then stops routing to the replica and replaces it)."
    from types import SimpleNamespace

    from tsforge.ray_serve import ray_app

    replica = ray_app({'model': 'models:/m@champion'})._bound_deployment.func_or_class
    failed = SimpleNamespace(live=None, ready=lambda: (503, {'detail': 'model not loaded: version 3 failed to load'}))
    for holder, why in ((None, 'not built'), (failed, 'version 3 failed to load')):
        with pytest.raises(RuntimeError, match=why):
            replica.check_health(SimpleNamespace(server=SimpleNamespace(holder=holder)))
    replica.check_health(SimpleNamespace(server=SimpleNamespace(holder=SimpleNamespace(live=object()))))
