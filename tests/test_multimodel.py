"""Many registered models behind one service: 20 tiny models served by one process with a cache of 5 (parity for
every model, eviction, 403/404 naming the model, reload under load with 0 failed requests on a real uvicorn), and by
2 Ray Serve replicas through Ray's model multiplexing."""

import datetime
import os, subprocess, threading, time
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient

from conftest import ROOT, free_port, stop, uvicorn_cmd, wait_http

N_MODELS, CACHE = 20, 5


def _log_one(name: str, model: str, input_length: int, horizon: int):
    "Fit a tiny model on ETTh1 (OT only) and register it as a new version of `name` with alias champion."
    from tsforge import bundle, registry
    from tsforge.config import load_config
    from tsforge.prepare import prepare
    from tsforge.train import fit_evaluate

    cfg = load_config(
        'etth1', [f'model={model}', f'input_length={input_length}', f'horizon={horizon}', 'registry.enabled=false']
    )
    prep = prepare(cfg)
    ev = fit_evaluate(cfg, prep, keep_predictions=False)
    with mlflow.start_run(run_name=f'multimodel-{name}') as run:
        info = bundle.log_model(ev.model, cfg, prep.train_rows())
    version = registry.register(info.model_uri, name, run.info.run_id)
    registry.set_alias(name, 'champion', version)
    return version


@pytest.fixture(scope='module')
def models(store):
    "20 registered models (naive and linear, input length 24-62, horizon 12): name -> (input_length, horizon)."
    from tsforge.store import configure

    configure()
    out = {}
    for i in range(N_MODELS):
        name, L = f'mm-{i:02d}', 24 + 2 * i
        _log_one(name, 'naive' if i % 2 else 'linear', L, 12)
        out[name] = (L, 12)
    return out


@pytest.fixture(scope='module')
def frame():
    from tsforge.config import load_config
    from tsforge.prepare import prepare

    f = prepare(load_config('etth1')).frame
    return f


def _history(frame, L, at=2000):
    h = frame.iloc[at - L : at][['date', 'OT']].copy()
    h['date'] = h['date'].astype(str)
    return h


def _expected(name, h):
    from tsforge import bundle

    m = bundle.load_model(f'models:/{name}@champion', check_requirements=False)
    return m.forecast(h).OT.to_numpy()


@pytest.fixture(scope='module')
def client(models, monkeypatch_module):
    monkeypatch_module.setenv('TSFORGE_MODEL', 'models:/mm-00@champion')
    monkeypatch_module.setenv('TSFORGE_MODEL_CACHE_SIZE', str(CACHE))
    monkeypatch_module.setenv('TSFORGE_ALLOWED_MODELS', ','.join(n for n in models if n != 'mm-19'))
    monkeypatch_module.setenv('TSFORGE_RELOAD_S', '0')
    from tsforge.serve import create_app

    with TestClient(create_app(load_in_background=False)) as c:
        yield c


@pytest.fixture(scope='module')
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_parity_for_every_model_and_eviction(client, models, frame):
    for name, (L, H) in models.items():
        if name == 'mm-19':
            continue
        h = _history(frame, L)
        r = client.post(f'/models/{name}/predict', json={'history': h.to_dict(orient='records')})
        assert r.status_code == 200, r.text
        got = np.array([row['OT'] for row in r.json()['forecast']])
        assert len(got) == H
        np.testing.assert_allclose(got, _expected(name, h), rtol=1e-6, atol=1e-6)
    listing = client.get('/models').json()
    assert 'cached' in listing, listing
    assert len(listing['cached']) == CACHE  # bounded: the least recently used were evicted
    assert [m['model'] for m in listing['cached']] == [f'mm-{i:02d}@champion' for i in range(18, 13, -1)]
    metrics = client.get('/metrics').text
    assert 'tsforge_model_cache_evictions_total{model="mm-00@champion"}' in metrics
    assert 'tsforge_model_requests_total{model="mm-07@champion",status="200"}' in metrics
    # an evicted model loads again on its next request
    h = _history(frame, models['mm-00'][0])
    assert client.post('/models/mm-00/predict', json={'history': h.to_dict(orient='records')}).status_code == 200


def test_names_alias_version_header_and_single_model_routes(client, models, frame):
    h = _history(frame, models['mm-03'][0]).to_dict(orient='records')
    a = client.post('/models/mm-03@champion/predict', json={'history': h})
    b = client.post('/models/mm-03/predict?version=1', json={'history': h})
    c = client.post('/predict', json={'history': h}, headers={'serve_multiplexed_model_id': 'mm-03@champion'})
    assert a.status_code == b.status_code == c.status_code == 200
    assert a.json()['forecast'] == b.json()['forecast'] == c.json()['forecast']
    assert a.headers['x-tsforge-model-version'] == '1'
    md = client.get('/models/mm-03/metadata').json()
    assert md['input_length'] == models['mm-03'][0] and md['name'] == 'mm-03'
    # the single-model routes still serve TSFORGE_MODEL
    h0 = _history(frame, models['mm-00'][0]).to_dict(orient='records')
    assert client.post('/predict', json={'history': h0}).status_code == 200
    assert client.get('/metadata').json()['name'] == 'mm-00'
    spec = client.get('/openapi.json').json()
    assert {'/models/{ref}/predict', '/models/{ref}/metadata', '/models'} <= set(spec['paths'])
    assert '/models/{ref}/predict' in client.get('/docs').text


def test_refused_unknown_and_malformed_models_name_the_model(client, models, frame):
    h = _history(frame, 40).to_dict(orient='records')
    r = client.post('/models/mm-19/predict', json={'history': h})
    assert r.status_code == 403 and 'mm-19' in r.json()['detail'] and 'TSFORGE_ALLOWED_MODELS' in r.json()['detail']
    r = client.post('/models/mm-07/predict?alias=nope', json={'history': h})
    assert r.status_code == 404 and 'mm-07@nope' in r.json()['detail'], r.text
    r = client.post('/models/mm-07/predict?version=99', json={'history': h})
    assert r.status_code == 404 and 'mm-07/99' in r.json()['detail'], r.text
    r = client.post('/models/mm-07/predict?version=x', json={'history': h})
    assert r.status_code == 422 and 'mm-07' in r.json()['detail']
    r = client.post('/models/mm-07@a/predict?version=2', json={'history': h})
    assert r.status_code == 422
    # a model outside the allowed list is refused before the registry is asked, so an unknown one is also a 403 here;
    # with no allowed list it is a 404 naming it
    r = client.post('/models/no-such-model/predict', json={'history': h})
    assert r.status_code == 403 and 'no-such-model' in r.json()['detail']


@pytest.mark.parametrize(
    'path',
    [
        '/models/mm-07/predict?version=%C2%B2',  # '²'.isdigit() is True and int('²') fails: once a 500
        '/models/mm-07/predict?version=%D9%A1',  # Arabic-Indic one: once served as version 1
        '/models/mm-07/predict?version=99999999999999999999999',  # once a 503 from the database
        '/models/mm-07/predict?version=0',
        '/models/mm-07/predict?version=',  # once served @champion
        '/models/mm-07/predict?alias=',
        '/models/mm-07/predict?alias=champion&alias=zzz',  # once the first won
        '/models/mm-07/predict?version=1&version=2',
        '/models/mm-07/predict?horizon=3',  # once ignored
        '/models/mm-07/predict?alias',
        '/models/mm-07@/predict',  # once champion
        '/models/%20mm-07%20/predict',  # once trimmed
        '/models/mm-07/metadata?foo=1',
        '/models/mm-07@latest/predict',  # once served: MLflow reserves 'latest' (refused in the config too)
        '/models/mm-07/predict?alias=champion%20',  # once a 404 "not registered"
        '/models/mm-07/predict?alias=v2',
    ],
)
def test_model_references_are_never_guessed(client, models, frame, path):
    "A malformed part of a model reference is a 422 naming the model; nothing is trimmed, defaulted or ignored."
    h = _history(frame, models['mm-07'][0]).to_dict(orient='records')
    r = client.get(path) if '/metadata' in path else client.post(path, json={'history': h})
    assert r.status_code == 422, (path, r.status_code, r.text)
    assert r.json()['model'] is not None and 'x-tsforge-model-version' not in r.headers, r.text


def test_version_header_names_the_model_that_answered(client, models, frame):
    "The x-tsforge-model-version header of a many-model route is that model's version, never the server's own."
    r = client.get('/models/mm-05/metadata')
    assert r.status_code == 200 and r.headers['x-tsforge-model-version'] == str(r.json()['version'])
    assert {'last_check', 'check_failures'} <= set(r.json()), r.json()
    checked = r.json()['last_check']  # the same ISO 8601 form as the server's own /metadata
    assert checked is None or datetime.datetime.fromisoformat(checked).tzinfo is not None, checked
    r = client.post('/models/no-such-model/predict', json={'history': []})
    assert r.status_code in (403, 404) and 'x-tsforge-model-version' not in r.headers
    assert 'x-tsforge-model-version' in client.get('/metadata').headers  # the server's own routes keep it


def test_deleted_model_is_not_served_from_the_cache(models, frame, monkeypatch):
    """A cached model deleted from the registry: its next requests are 404 once a registry check sees it gone (a
    pinned version is checked too), and the cached models never write the server's own model metrics."""
    from mlflow import MlflowClient

    from tsforge.serve import create_app

    v = _log_one('mm-deleted', 'naive', 24, 12)
    monkeypatch.setenv('TSFORGE_MODEL', 'models:/mm-00@champion')
    monkeypatch.delenv('TSFORGE_ALLOWED_MODELS', raising=False)
    monkeypatch.setenv('TSFORGE_RELOAD_S', '0.5')
    h = _history(frame, 24).to_dict(orient='records')
    with TestClient(create_app(load_in_background=False)) as c:
        for path in ('/models/mm-deleted/predict', f'/models/mm-deleted/predict?version={v}'):
            assert c.post(path, json={'history': h}).status_code == 200
        metrics = c.get('/metrics').text
        assert 'name="mm-deleted"' not in metrics  # tsforge_model_info: the server's own model only
        MlflowClient().delete_registered_model('mm-deleted')
        deadline, codes = time.time() + 30, None
        while time.time() < deadline:
            codes = [
                c.post(p, json={'history': h}).status_code
                for p in ('/models/mm-deleted/predict', f'/models/mm-deleted/predict?version={v}')
            ]
            if codes == [404, 404]:
                break
            time.sleep(0.3)
        assert codes == [404, 404], codes
        assert all('mm-deleted' not in m['model'] for m in c.get('/models').json()['cached'])
        assert c.post('/predict', json={'history': _history(frame, 24).to_dict(orient='records')}).status_code == 200


def test_unknown_model_is_404_without_allowed_list(models, frame, monkeypatch):
    monkeypatch.setenv('TSFORGE_MODEL', 'models:/mm-00@champion')
    monkeypatch.delenv('TSFORGE_ALLOWED_MODELS', raising=False)
    from tsforge.serve import create_app

    with TestClient(create_app(load_in_background=False)) as c:
        r = c.post('/models/no-such-model/predict', json={'history': _history(frame, 40).to_dict(orient='records')})
        assert r.status_code == 404 and 'no-such-model' in r.json()['detail'] and r.json()['model']


def test_eviction_and_reload_under_load_on_uvicorn(models, frame, tmp_path):
    """A real uvicorn with a cache of 5: 8 client threads spread over 10 models (constant eviction) while mm-01's alias
    moves to a new version: 0 failed requests, and mm-01 answers from the new version afterwards."""
    port = free_port()
    env = {
        **os.environ,
        'TSFORGE_MODEL': 'models:/mm-00@champion',
        'TSFORGE_MODEL_CACHE_SIZE': str(CACHE),
        'TSFORGE_RELOAD_S': '0.5',
    }
    env.pop('TSFORGE_ALLOWED_MODELS', None)
    proc = subprocess.Popen(uvicorn_cmd(port), env=env, cwd=ROOT)
    url = f'http://127.0.0.1:{port}'
    names = [f'mm-{i:02d}' for i in range(10)]
    bodies = {n: {'history': _history(frame, models[n][0]).to_dict(orient='records')} for n in names}
    stop_at, failures, seen = [False], [], {}
    try:
        wait_http(f'{url}/ready', proc)

        def worker(k):
            s, i = requests.Session(), k
            while not stop_at[0]:
                n = names[i % len(names)]
                r = s.post(f'{url}/models/{n}/predict', json=bodies[n], timeout=60)
                if r.status_code != 200:
                    failures.append((n, r.status_code, r.text[:200]))
                elif n == 'mm-01':
                    seen[r.headers['x-tsforge-model-version']] = seen.get(r.headers['x-tsforge-model-version'], 0) + 1
                i += 3

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        time.sleep(3)
        new = _log_one('mm-01', 'naive', models['mm-01'][0], 12)  # alias champion moves to the new version
        t0 = time.time()
        while new not in seen and time.time() - t0 < 60:
            time.sleep(0.5)
        time.sleep(1)
        stop_at[0] = True
        for t in threads:
            t.join(120)
        assert failures == []
        assert new in seen and '1' in seen
        m = requests.get(f'{url}/metrics', timeout=30).text
        assert 'tsforge_model_cache_evictions_total' in m
    finally:
        stop_at[0] = True
        stop(proc)


@pytest.fixture(scope='module')
def ray_multi_url(serve_port, models):
    from ray import serve
    from tsforge.ray_serve import ray_app
    from tsforge.store import tracking_uri

    old = os.environ.get('TSFORGE_MODEL_CACHE_SIZE')
    os.environ['TSFORGE_MODEL_CACHE_SIZE'] = str(CACHE)
    allowed = os.environ.pop('TSFORGE_ALLOWED_MODELS', None)  # the app's settings are read here, in the driver
    try:
        serve.run(
            ray_app(
                {
                    'model': 'models:/mm-00@champion',
                    'num_replicas': 2,
                    'num_cpus': 0.25,
                    'tracking_uri': tracking_uri(),
                }
            ),
            name='tsforge-multi',
            route_prefix='/',
        )
        yield f'http://127.0.0.1:{serve_port}'
    finally:
        if old is None:
            os.environ.pop('TSFORGE_MODEL_CACHE_SIZE', None)
        else:
            os.environ['TSFORGE_MODEL_CACHE_SIZE'] = old
        if allowed is not None:
            os.environ['TSFORGE_ALLOWED_MODELS'] = allowed
        serve.delete('tsforge-multi')


def test_two_ray_replicas_multiplex_20_models(ray_multi_url, models, frame):
    url = ray_multi_url
    names = list(models)

    def one(n):
        h = _history(frame, models[n][0])
        r = requests.post(
            f'{url}/predict',
            json={'history': h.to_dict(orient='records')},
            headers={'serve_multiplexed_model_id': f'{n}@champion'},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        got = np.array([row['OT'] for row in r.json()['forecast']])
        return np.abs(got - _expected(n, h)).max()

    with ThreadPoolExecutor(4) as ex:
        errs = list(ex.map(one, names + names[:5]))
    assert max(errs) < 1e-6
    h = _history(frame, 40).to_dict(orient='records')
    r = requests.post(f'{url}/models/no-such-model/predict', json={'history': h}, timeout=60)
    assert r.status_code == 404 and 'no-such-model' in r.json()['detail']
    r = requests.post(f'{url}/models/mm-03/predict?version=%C2%B2', json={'history': h}, timeout=60)
    assert r.status_code == 422 and 'version' in r.json()['detail'], r.text
    listing = requests.get(f'{url}/models', timeout=60).json()  # the limit Ray applies, said as such
    assert listing['cache_size'] == CACHE and 'models_per_replica' in listing['cache_size_enforced_by'], listing


def test_a_memory_bound_ray_would_not_apply_is_refused(monkeypatch):
    from tsforge.ray_serve import ray_app

    monkeypatch.setenv('TSFORGE_MODEL_CACHE_MB', '500')
    with pytest.raises(ValueError, match='TSFORGE_MODEL_CACHE_MB=500 is not applied under Ray Serve'):
        ray_app({'model': 'models:/mm-00@champion'})


@pytest.mark.parametrize(
    'name, value',
    [
        ('TSFORGE_MODEL_CACHE_SIZE', 'abc'),
        ('TSFORGE_MODEL_CACHE_SIZE', '0'),
        ('TSFORGE_MODEL_CACHE_SIZE', '2.5'),
        ('TSFORGE_MODEL_CACHE_MB', '-5'),
        ('TSFORGE_MODEL_CACHE_MB', 'abc'),
        ('TSFORGE_MODEL_CACHE_MB', 'nan'),
        ('TSFORGE_DEFAULT_ALIAS', 'no/such'),
    ],
)
def test_bad_cache_settings_stop_the_server_at_start(monkeypatch, name, value):
    "A cache setting that is not what the variable takes: the app is not made, the error names it and the range."
    from tsforge.multimodel import CacheSettings
    from tsforge.serve import create_app

    for k in ('TSFORGE_MODEL_CACHE_SIZE', 'TSFORGE_MODEL_CACHE_MB', 'TSFORGE_DEFAULT_ALIAS'):
        monkeypatch.setenv(k, '')  # empty: the default (this module's client sets a cache size)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f'^{name}: expected .*, got ') as e:
        create_app('models:/mm-00@champion')
    assert repr(value) in str(e.value)
    monkeypatch.setenv(name, '')
    assert CacheSettings.from_env() == CacheSettings()
    for k, v in {
        'TSFORGE_MODEL_CACHE_SIZE': '3',
        'TSFORGE_MODEL_CACHE_MB': '0',
        'TSFORGE_DEFAULT_ALIAS': 'prod',
    }.items():
        monkeypatch.setenv(k, v)
    assert CacheSettings.from_env() == CacheSettings(3, 0.0, 'prod')
