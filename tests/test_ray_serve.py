"""Ray Serve: the same app on two replicas of a real local Ray, batching concurrent forecasts, answering like uvicorn
does, and listening on loopback only."""

import ipaddress, os, socket
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from conftest import free_port
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
def ray_serve_url(ray_local, trained):
    from ray import serve
    from tsforge.ray_serve import ray_app

    port = free_port()
    serve.start(http_options={'host': '127.0.0.1', 'port': port})
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
        yield f'http://127.0.0.1:{port}'
    finally:
        serve.shutdown()


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


_OPTIMISED_CHILD = """
import json, os, signal, sys, time
os.environ['RAY_SERVE_THROUGHPUT_OPTIMIZED'] = '1'  # before Ray starts: its processes inherit it
import ray
from ray import serve
from tsforge.ray_serve import ray_app, replica_endpoints
port, out, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ray.init(address='local', num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1', _temp_dir=tmp)
serve.start(http_options={'host': '127.0.0.1', 'port': port})
app = ray_app({'model': 'models:/tsforge-etth1@champion', 'num_replicas': 2, 'num_cpus': 0.25,
               'tracking_uri': os.environ['MLFLOW_TRACKING_URI']})
serve.run(app, name='tsforge', route_prefix='/')
while len(urls := replica_endpoints('tsforge')) < 2:
    time.sleep(0.2)
open(out + '.tmp', 'w').write(json.dumps(urls))
os.replace(out + '.tmp', out)
done = []
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda *_: done.append(1))
while not done:
    time.sleep(0.2)
serve.shutdown()
ray.shutdown()
"""


def test_throughput_optimised_replicas_answer_on_their_own_loopback_ports(trained, tmp_path):
    """RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (its own Ray, in a child process): each of 2 replicas listens for HTTP itself,
    `replica_endpoints` lists them, they answer like the proxy does, and every socket is on loopback."""
    import json, shutil, subprocess, sys, tempfile, time

    from conftest import stop

    out, port = tmp_path / 'endpoints.json', free_port()
    ray_tmp = tempfile.mkdtemp(prefix='rayopt', dir='/tmp')  # short: Ray's socket paths live under it
    env = {
        **os.environ,
        'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0',
        'RAY_AUTH_MODE': 'disabled',
        'RAY_agent_register_timeout_ms': '120000',  # a busy machine: Ray's agents may start slower than 15 s
        'RAY_raylet_start_wait_time_s': '120',
        'MLFLOW_TRACKING_URI': tracking_uri(),
    }
    proc = subprocess.Popen([sys.executable, '-c', _OPTIMISED_CHILD, str(port), str(out), ray_tmp], env=env)
    try:
        t0 = time.time()
        while not out.exists():
            assert proc.poll() is None, 'the Ray Serve child exited'
            assert time.time() - t0 < 300, 'replicas not up within 300 s'
            time.sleep(0.5)
        urls = json.loads(out.read_text())
        assert len(urls) == 2 and len(set(urls)) == 2
        prep = prepare(load_config('etth1'))
        h = prep.frame.iloc[2000 - 336 : 2000].copy()
        h['date'] = h['date'].astype(str)
        body = {'history': h.to_dict(orient='records')}
        via_proxy = requests.post(f'http://127.0.0.1:{port}/predict', json=body, timeout=60)
        assert via_proxy.status_code == 200, via_proxy.text
        for u in urls:
            host, p = u.removeprefix('http://').rsplit(':', 1)
            assert host == '127.0.0.1' and 30000 <= int(p) <= 31000, u
            assert requests.get(f'{u}/ready', timeout=30).status_code == 200
            r = requests.post(f'{u}/predict', json=body, timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()['forecast'] == via_proxy.json()['forecast']
            assert r.headers['x-tsforge-model-version'] == trained['version']
        assert non_loopback_listeners(proc.pid) == []
    finally:
        stop(proc, timeout=60)
        shutil.rmtree(ray_tmp, ignore_errors=True)
