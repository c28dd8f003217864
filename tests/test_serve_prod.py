"""Production serving with real uvicorn processes on 127.0.0.1: hot reload under load, failed loads and retries,
bearer auth, the model allow-list, /metrics, redacted errors, read timeouts, UTC offsets, pandas' limits, overflow."""

import gzip, json, socket, threading, time

import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from conftest import ROOT, app_client, uvicorn, wait_http
from tsforge import bundle, registry, runs
from tsforge.config import load_config
from tsforge.models import Naive, SeasonalNaive
from tsforge.preprocess import fit_state

L, H = 24, 6
FRAME = pd.DataFrame(
    {
        'date': pd.date_range('2020-01-01', periods=400, freq='h'),
        'OT': 10 + np.sin(np.arange(400) / 5) + np.arange(400) / 100,
    }
)


def log_version(name: str, model_cls=Naive, L: int = L, H: int = H) -> tuple[str, object]:
    "Log and register a small model under `name` (L=24, H=6, hourly OT); returns (version, ModelInfo)."
    cfg = load_config('etth1', ['model=naive', f'input_length={L}', f'horizon={H}', f'registry.model_name={name}'])
    st = fit_state(FRAME, 'date', ['OT'], ['OT'], L, H, 'h', train_end=300)
    with runs.start_run(cfg, f'serve-test-{name}') as run:
        info = bundle.log_model(model_cls({}, st), cfg, FRAME)
    return registry.register(info.model_uri, name, run.info.run_id), info


def body(k: int = 0, n: int = L, **edit) -> dict:
    h = FRAME.iloc[k : k + n].copy()
    h['date'] = h['date'].astype(str)
    rec = h.to_dict(orient='records')
    return {'history': rec, **edit}


def wait_until(cond, timeout=60):
    "Poll `cond()` until true (a bound on waiting, not a timing assert)."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f'not within {timeout}s')


@pytest.fixture(scope='module')
def small(store):
    "A registered model `serve-small` (naive, L=24, H=6) with alias champion."
    v, info = log_version('serve-small')
    registry.set_alias('serve-small', 'champion', v)
    return {'version': v, 'info': info}


@pytest.mark.slow
def test_hot_reload_under_load(small):
    "16 clients keep sending while a new version is registered and the alias moves: 0 failures, answers switch to it."
    name = 'serve-reload'
    v1, _ = log_version(name, Naive)
    registry.set_alias(name, 'champion', v1)
    with uvicorn(f'models:/{name}@champion', {'TSFORGE_RELOAD_S': '1'}) as (url, _):
        stop_at, seen, lock = [None], [], threading.Lock()

        def client(k):
            s = requests.Session()
            while stop_at[0] is None or time.time() < stop_at[0]:
                r = s.post(f'{url}/predict', json=body(k * 3), timeout=30)
                ver = r.json()['model']['version'] if r.status_code == 200 else None
                with lock:
                    seen.append(
                        (
                            time.time(),
                            k,
                            r.status_code,
                            ver,
                            r.headers.get('x-tsforge-model-version'),
                            r.json()['forecast'][-1]['OT'] if ver else None,
                        )
                    )

        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        v2, _ = log_version(name, SeasonalNaive)
        moved = time.time()
        registry.set_alias(name, 'champion', v2)
        deadline = time.time() + 90
        while time.time() < deadline and not any(s[3] == v2 for s in seen):
            time.sleep(0.1)
        switched = next((s[0] for s in seen if s[3] == v2), None)
        stop_at[0] = time.time() + 1.0
        for t in threads:
            t.join(60)
        ready = requests.get(f'{url}/ready').json()
    assert switched is not None, 'answers never switched to the new version'
    assert all(s[2] == 200 for s in seen), [s for s in seen if s[2] != 200][:3]
    assert {s[3] for s in seen} == {v1, v2} and all(s[3] == s[4] for s in seen)
    for k in range(16):  # per client: v1 answers, then only v2 answers
        vs = [s[3] for s in seen if s[1] == k]
        assert vs == sorted(vs, key=lambda v: v == v2)
    after = [s for s in seen if s[0] > switched + 0.5]
    assert after and all(s[3] == v2 for s in after)
    # v2 is the seasonal naive: the last step repeats the value 24 steps back, not the last value
    assert any(s[3] == v2 and s[5] != seen[0][5] for s in after)
    assert ready['version'] == v2 and ready['loaded_at'] and ready['reload_interval_s'] == 1
    print(
        f'\nreload: {len(seen)} requests, 0 failed; answers switched {switched - moved:.2f}s after the alias moved '
        f'(interval 1s + load {ready["load_seconds"]}s)'
    )


@pytest.mark.slow
def test_failed_reload_keeps_old_model_and_first_load_retries(small, tmp_path):
    name = 'serve-retry'
    with uvicorn(f'models:/{name}@champion', {'TSFORGE_RELOAD_S': '0.5', 'TSFORGE_RETRY_S': '0.5'}, ready=False) as (
        url,
        proc,
    ):
        r = requests.get(f'{url}/ready')
        assert r.status_code == 503 and r.json()['status'] in ('loading', 'failed')
        assert requests.post(f'{url}/predict', json=body()).status_code == 503
        v1, _ = log_version(name)  # the model appears: the server recovers without a restart
        registry.set_alias(name, 'champion', v1)
        wait_http(f'{url}/ready', proc, timeout=60)
        assert requests.post(f'{url}/predict', json=body()).json()['model']['version'] == v1
        v2, info2 = log_version(name)  # a version whose artifacts are gone: the reload fails, v1 keeps serving
        client = MlflowClient()
        import shutil
        from urllib.parse import urlparse

        lm = client.get_logged_model(info2.model_id)
        shutil.rmtree(urlparse(lm.artifact_location).path)
        registry.set_alias(name, 'champion', v2)
        t0 = time.time()
        while time.time() - t0 < 60 and 'reload_error' not in requests.get(f'{url}/ready').json():
            time.sleep(0.2)
        ready = requests.get(f'{url}/ready').json()
        assert ready['status'] == 'ready' and ready['version'] == v1 and 'reload_error' in ready, ready
        assert ready['reload_error'].startswith(f'version {v2} (alias champion) failed to load: '), ready
        assert requests.post(f'{url}/predict', json=body()).json()['model']['version'] == v1
        m = requests.get(f'{url}/metrics').text
        assert 'tsforge_model_loads_total{kind="reload",outcome="failed"}' in m
        assert '/tmp' not in json.dumps(ready) and str(ROOT) not in json.dumps(ready)
        # the registry answers, the version does not load: no failed check, nothing overdue
        assert ready['check_failures'] == 0 and ready['check_overdue'] is False, ready
        assert 'tsforge_reload_failures_total{stage="check"} 0.0' in m
        assert 'tsforge_reload_failures_total{stage="load"} 0.0' not in m

        registry.set_alias(name, 'champion', v1)  # back to v1: the error clears
        wait_until(lambda: 'reload_error' not in requests.get(f'{url}/ready').json())
        v3, info3 = log_version(name)  # a version whose artifacts are corrupt: every file overwritten
        from pathlib import Path

        for p in Path(urlparse(client.get_logged_model(info3.model_id).artifact_location).path).rglob('*'):
            if p.is_file():
                p.write_bytes(b'\x00 not a model')
        registry.set_alias(name, 'champion', v3)
        wait_until(lambda: 'reload_error' in requests.get(f'{url}/ready').json())
        ready = requests.get(f'{url}/ready').json()
        assert ready['status'] == 'ready' and ready['version'] == v1 and ready['check_failures'] == 0, ready
        assert ready['reload_error'].startswith(f'version {v3} (alias champion) failed to load: '), ready
        assert requests.post(f'{url}/predict', json=body()).json()['model']['version'] == v1
        # the store is as the operator left it: the server never moves an alias or deletes a version
        assert str(client.get_model_version_by_alias(name, 'champion').version) == v3
        assert sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'")) == [
            int(v1),
            int(v2),
            int(v3),
        ]
        assert client.get_run(client.get_model_version(name, v3).run_id).info.status == 'FINISHED'
        assert proc.poll() is None


def test_auth_allow_list_and_open_routes(small):
    uri = 'models:/serve-small@champion'
    with app_client(uri, {'TSFORGE_API_TOKEN': 's3cret-token'}) as http:
        for route in ('/health', '/ready', '/metrics'):
            assert http.get(route).status_code == 200
        for hdr in ({}, {'Authorization': 'Bearer wrong'}, {'Authorization': 's3cret-token'}):
            r = http.post('/predict', json=body(), headers=hdr)
            assert r.status_code == 401 and r.headers['www-authenticate'].startswith('Bearer'), r.text
            assert http.get('/metadata', headers=hdr).status_code == 401
        ok = {'Authorization': 'Bearer s3cret-token'}
        assert http.post('/predict', json=body(), headers=ok).status_code == 200
        two = [('Authorization', 'Bearer wrong'), ('Authorization', 'Bearer s3cret-token')]  # not last-one-wins
        for r in (http.post('/predict', json=body(), headers=two), http.get('/metadata', headers=two[::-1])):
            assert r.status_code == 400 and 'more than one Authorization header' in r.json()['detail'], r.text
        assert http.get('/metadata', headers=ok).json()['input_length'] == L
        spec = http.get('/openapi.json').json()
        assert spec['paths']['/predict']['post']['security'] == [{'bearer': []}]
    with app_client(uri, {'TSFORGE_ALLOWED_MODELS': 'tsforge-etth1, models:/other-'}) as http:
        r = http.get('/ready')
        assert (
            r.status_code == 503 and r.json()['status'] == 'refused' and 'TSFORGE_ALLOWED_MODELS' in r.json()['detail']
        )
    with app_client(uri, {'TSFORGE_ALLOWED_MODELS': 'serve-small'}) as http:
        assert http.post('/predict', json=body()).status_code == 200


def test_token_file_rotates_without_a_restart(small, tmp_path, caplog):
    "TSFORGE_API_TOKEN_FILE: the served app follows the file (read again each second); a broken file changes nothing."
    import os

    f = tmp_path / 'tokens'
    f.write_text('old-token\n')

    def swap(text):  # a new file moved into place, as a secret mount rotates; then the check interval passes
        (tmp_path / 'new').write_text(text)
        os.replace(tmp_path / 'new', f)
        time.sleep(1.2)

    with (
        caplog.at_level('WARNING', 'tsforge.serve'),
        app_client('models:/serve-small@champion', {'TSFORGE_API_TOKEN_FILE': str(f)}) as http,
    ):

        def accepted():
            return [
                t
                for t in ('old-token', 'new-token')
                if http.post('/predict', json=body(), headers={'Authorization': f'Bearer {t}'}).status_code == 200
            ]

        assert accepted() == ['old-token'] and http.post('/predict', json=body()).status_code == 401
        swap('old-token\nnew-token\n')  # overlap: clients move to the new token
        assert accepted() == ['old-token', 'new-token']
        swap('new-token\n')
        assert accepted() == ['new-token']
        swap('')  # emptied by mistake: not open, the last good token stays
        assert accepted() == ['new-token'] and http.post('/predict', json=body()).status_code == 401
        assert http.get('/openapi.json').json()['paths']['/predict']['post']['security'] == [{'bearer': []}]
    logs = [r.getMessage() for r in caplog.records]
    assert any('bearer auth on (TSFORGE_API_TOKEN_FILE, read again each second)' in m for m in logs), logs
    assert any('got none' in m and 'the last good token(s) stay in effect' in m for m in logs), logs
    assert not any('old-token' in m or 'new-token' in m for m in logs)


def test_startup_says_whether_auth_and_allow_list_are_on(small, caplog):
    uri = 'models:/serve-small@champion'
    for env, want in [
        (
            {'TSFORGE_API_TOKEN': 's3cret-token', 'TSFORGE_ALLOWED_MODELS': 'serve-small'},
            'bearer auth on (TSFORGE_API_TOKEN); model allow-list on (TSFORGE_ALLOWED_MODELS: serve-small)',
        ),
        ({}, 'bearer auth off (TSFORGE_API_TOKEN, TSFORGE_API_TOKEN_FILE unset'),
    ]:
        caplog.clear()
        with caplog.at_level('WARNING', 'tsforge.serve'), app_client(uri, env):
            pass
        lines = [r.getMessage() for r in caplog.records if 'bearer auth' in r.getMessage()]
        assert len(lines) == 1 and lines[0].startswith(want) and 's3cret' not in lines[0], lines


def test_max_rows_below_the_input_length_fails_the_load(small):
    "TSFORGE_MAX_ROWS below the model's input length: a failed load naming it, not a ready server that 422s everyone."
    with app_client('models:/serve-small@champion', {'TSFORGE_MAX_ROWS': '10', 'TSFORGE_RETRY_S': '30'}) as http:
        r = http.get('/ready')
        assert r.status_code == 503 and r.json()['status'] == 'failed', r.text
        assert 'TSFORGE_MAX_ROWS=10 is below the 24 history records this model reads' in r.text, r.text


@pytest.mark.parametrize('mlmodel', ['x', 'flavors: {sklearn: {}}', None])
def test_a_broken_model_directory_is_named_not_an_internal_error(tmp_path, mlmodel):
    "A directory whose MLmodel is not a pyfunc model's (or is missing): /ready says so, not MLflow's AttributeError."
    if mlmodel is not None:
        (tmp_path / 'MLmodel').write_text(mlmodel)
    with app_client(str(tmp_path), {'TSFORGE_RETRY_S': '30'}) as http:
        r = http.get('/ready')
        assert r.status_code == 503 and r.json()['status'] == 'failed', r.text
        assert 'MLmodel' in r.text and 'AttributeError' not in r.text and str(tmp_path) not in r.text, r.text


def test_errors_carry_no_secrets_or_paths(small, tmp_path):
    leaky = {
        'MLFLOW_TRACKING_URI': 'http://alice:pa55w0rd@127.0.0.1:9/',
        'MLFLOW_HTTP_REQUEST_MAX_RETRIES': '0',
        'MLFLOW_HTTP_REQUEST_TIMEOUT': '2',
        'TSFORGE_RETRY_S': '30',
    }
    at_sign = {**leaky, 'MLFLOW_TRACKING_URI': 'http://alice:pa55w0rd@Secret42@127.0.0.1:9/'}  # '@' in the password
    for uri, env in [
        ('models:/serve-small@champion', leaky),
        ('models:/serve-small@champion', at_sign),
        (str(tmp_path / 'no' / 'such' / 'model'), {}),
        ('runs:/0123456789abcdef/model', {}),
    ]:
        with app_client(uri, env) as http:
            t0 = time.time()
            while time.time() - t0 < 60 and http.get('/ready').json()['status'] == 'loading':
                time.sleep(0.2)
            texts = [
                http.get('/ready').text,
                http.get('/metadata').text,
                http.post('/predict', json=body()).text,
            ]
            for t in texts:
                assert 'pa55w0rd' not in t and 'alice' not in t and str(tmp_path) not in t and 'Traceback' not in t, t
                assert 'Secret42' not in t, t
                assert '/tmp/' not in t and str(ROOT) not in t, t
            assert http.get('/ready').json()['status'] == 'failed'


def test_deleted_alias_is_gone_not_an_outage():
    """The alias is deleted: the registry answered, so the check counts as a contact (last_check moves, no failure, not
    overdue); /ready is a 503 `gone` with the reason, /metrics says it, and the model's routes answer 404 as the
    many-model routes do. The alias set again: served again."""
    name = 'serve-gone'
    v, _ = log_version(name)
    registry.set_alias(name, 'champion', v)
    with app_client(f'models:/{name}@champion', {'TSFORGE_RELOAD_S': '3600'}) as http:
        holder = http.app.state.served
        assert http.post('/predict', json=body()).status_code == 200
        assert http.get('/ready').json()['model_gone'] is False
        before = holder.last_check
        MlflowClient().delete_registered_model_alias(name, 'champion')
        time.sleep(0.01)
        assert holder.load() is True  # the loaded copy is kept, not served
        r = http.get('/ready')
        b = r.json()
        assert r.status_code == 503 and b['status'] == 'gone' and b['model_gone'] is True, b
        assert 'champion' in b['gone_reason'] and b['detail'].startswith('model not served: '), b
        assert b['check_failures'] == 0 and b['check_overdue'] is False and 'reload_error' not in b, b
        assert holder.last_check > before
        for r in (http.post('/predict', json=body()), http.get('/metadata')):
            assert r.status_code == 404 and 'is not registered any more' in r.json()['detail'], r.text
        m = http.get('/metrics').text
        assert 'tsforge_model_gone 1.0' in m and 'tsforge_reload_failures_total{stage="check"} 0.0' in m, m
        registry.set_alias(name, 'champion', v)
        assert holder.load() is True
        assert http.get('/ready').json()['model_gone'] is False
        assert http.post('/predict', json=body()).status_code == 200
        assert 'tsforge_model_gone 0.0' in http.get('/metrics').text


def test_metrics_and_version_header(small):
    with app_client('models:/serve-small@champion') as http:
        r = http.post('/predict', json=body())
        assert r.status_code == 200 and r.headers['x-tsforge-model-version'] == small['version']
        http.post('/predict', json=body(n=3))
        m = http.get('/metrics').text
        assert 'tsforge_requests_total{method="POST",route="/predict",status="200"} 1.0' in m
        assert 'tsforge_requests_total{method="POST",route="/predict",status="422"} 1.0' in m
        assert 'tsforge_request_seconds_bucket{le="0.5",route="/predict",status="200"} 1.0' in m
        assert 'tsforge_forecast_errors_total{reason="invalid"} 1.0' in m
        assert (
            f'tsforge_model_info{{name="serve-small",run_id="{small["info"].run_id}",version="{small["version"]}"}} 1.0'
            in m
        )
        assert (
            'tsforge_model_loads_total{kind="load",outcome="ok"} 1.0' in m and 'tsforge_model_load_seconds_count' in m
        )


@pytest.mark.slow
def test_metrics_with_workers_multiprocess(small, tmp_path):
    """uvicorn --workers 2 with PROMETHEUS_MULTIPROC_DIR: /metrics sums the workers' counters and lists each worker's
    model."""
    env = {'PROMETHEUS_MULTIPROC_DIR': str(tmp_path)}
    with uvicorn('models:/serve-small@champion', env, args=('--workers', '2')) as (url, _):
        t0 = time.time()
        while time.time() - t0 < 60 and requests.get(f'{url}/metrics').text.count('tsforge_model_info{') < 2:
            time.sleep(0.3)
        for _ in range(20):
            assert requests.post(f'{url}/predict', json=body()).status_code == 200
        m = requests.get(f'{url}/metrics').text
    assert m.count('tsforge_model_info{') == 2, m
    assert 'tsforge_requests_total{method="POST",route="/predict",status="200"} 20.0' in m


def test_logged_model_id_uri(small):
    with app_client(f'models:/{small["info"].model_id}') as http:
        r = http.post('/predict', json=body())
        assert r.status_code == 200 and r.json()['model']['run_id'] == small['info'].run_id


@pytest.mark.slow
def test_stalled_body_gzip_utf8(small):
    with uvicorn('models:/serve-small@champion', {'TSFORGE_BODY_TIMEOUT_S': '1'}) as (url, _):
        port = int(url.rsplit(':', 1)[1])
        # declares 1000 bytes, sends 6, then stalls
        with socket.create_connection(('127.0.0.1', port), timeout=30) as s:
            s.sendall(
                b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                b'Content-Length: 1000\r\n\r\n{"his:'
            )
            data = b''
            while chunk := s.recv(65536):
                data += chunk  # the server answers and closes the connection
        assert data.startswith(b'HTTP/1.1 408') and b'not received within 1 s' in data
        assert requests.get(f'{url}/health').status_code == 200
        raw = json.dumps(body()).encode()
        r = requests.post(
            f'{url}/predict',
            data=gzip.compress(raw),
            headers={'content-type': 'application/json', 'content-encoding': 'gzip'},
        )
        assert r.status_code == 415 and 'content-encoding' in r.json()['detail']
        r = requests.post(f'{url}/predict', data=gzip.compress(raw), headers={'content-type': 'application/json'})
        assert r.status_code == 422 and 'invalid JSON' in r.json()['detail']
        r = requests.post(
            f'{url}/predict', data=b'{"history": "\xff\xfe"}', headers={'content-type': 'application/json'}
        )
        assert r.status_code == 422 and 'invalid JSON' in r.json()['detail']


def test_offsets_limits_overflow(small):
    with app_client('models:/serve-small@champion') as http:
        post = lambda b: http.post('/predict', content=json.dumps(b), headers={'content-type': 'application/json'})
        good = body()
        plain = post(good).json()['forecast']
        aware = post({'history': [dict(r, date=r['date'] + '+02:00') for r in good['history']]})
        assert aware.status_code == 200
        fc = aware.json()['forecast']  # the offset is kept, not dropped: same wall clock, same values
        assert [r['date'] for r in fc] == [r['date'] + '+02:00' for r in plain] and [r['OT'] for r in fc] == [
            r['OT'] for r in plain
        ]
        utc = post({'history': [dict(r, date=r['date'].replace(' ', 'T') + 'Z') for r in good['history']]}).json()[
            'forecast'
        ]
        assert utc[0]['date'].endswith('Z')
        cases = [
            (
                [dict(r, date=r['date'] + ('Z' if i == 5 else '+02:00')) for i, r in enumerate(good['history'])],
                'history[5].date: UTC offset Z differs',
            ),
            (
                [dict(r, date=r['date'] + ('+02:00' if i >= 10 else '')) for i, r in enumerate(good['history'])],
                'history[10].date: UTC offset +02:00 differs from none',
            ),
            (
                [
                    dict(r, date=str(t))
                    for r, t in zip(good['history'], pd.date_range('2262-04-10 20:00', periods=L, freq='h'))
                ],
                'would pass 2262-04-11',
            ),
            (
                [dict(r, date=f'9999-01-01 {i:02d}:00:00') for i, r in enumerate(good['history'])],
                'outside the supported range',
            ),
            (
                [dict(r, date=f'1000-01-01 {i:02d}:00:00') for i, r in enumerate(good['history'])],
                'outside the supported range',
            ),
            ([dict(r, OT=1.7e308 * (-1) ** i) for i, r in enumerate(good['history'])], None),
        ]
        for hist, msg in cases:
            r = post({'history': hist})
            assert r.status_code in ((422,) if msg else (200, 422)), (msg, r.status_code, r.text[:300])
            if msg:
                assert msg in r.json()['detail'], (msg, r.json()['detail'])
            elif r.status_code == 200:
                assert all(np.isfinite(x['OT']) for x in r.json()['forecast'])
        dst = pd.date_range(
            '2021-03-27 12:00', periods=L, freq='h', tz='Europe/Berlin'
        )  # a real DST change, local offsets
        hist = [dict(r, date=t.isoformat()) for r, t in zip(good['history'], dst)]
        r = post({'history': hist})
        assert r.status_code == 422 and 'UTC offset +02:00 differs from +01:00' in r.json()['detail']


def test_openapi_is_precise_and_docs_offline(small):
    with app_client('models:/serve-small@champion') as http:
        spec = http.get('/openapi.json').json()
        req = spec['components']['schemas']['PredictRequest']
        assert req['properties']['history']['minItems'] == L
        rec = spec['components']['schemas']['Record']
        assert rec['required'] == ['date', 'OT'] and rec['properties']['OT'] == {'type': 'number'}
        ex = req['examples'][0]
        r = http.post('/predict', json=ex)
        assert r.status_code == 200, r.text  # the documented example is itself a valid request
        assert set(spec['paths']['/predict']['post']['responses']) >= {'200', '408', '413', '415', '422', '503'}
        docs = http.get('/docs').text
        assert '<script' not in docs and 'cdn' not in docs.lower() and '/predict' in docs


def test_requests_are_never_guessed(small):
    "Every row checked, ISO 8601 timestamps only, no silent query parameters or content types, huge integers: 4xx."
    with app_client('models:/serve-small@champion', {'TSFORGE_API_TOKEN': 's3cret-token'}) as http:
        auth = {'Authorization': 'Bearer s3cret-token', 'content-type': 'application/json'}
        post = lambda b, url='/predict', **h: http.post(url, content=json.dumps(b), headers={**auth, **h})
        good = body(n=L + 5)['history']  # five rows before the last L the model reads

        def edit(i, **kw):
            return {'history': [dict(r, **kw) if j == i else r for j, r in enumerate(good)]}

        cases = [
            (edit(0, OT=None), 'history[0].OT: missing value'),
            (edit(1, OT='garbage'), "history[1].OT: non-numeric value 'garbage'"),
            (edit(2, OT={'a': 1}), 'history[2].OT: non-numeric value'),
            (edit(L + 1, OT=10**400), f'history[{L + 1}].OT: number too large for a 64-bit float'),
            (edit(0, OT=10**400), 'history[0].OT: number too large'),
            (edit(4, OT='1_000'), "history[4].OT: non-numeric value '1_000'"),  # float() would read these three
            (edit(4, OT=' 1e3 '), 'history[4].OT: non-numeric value'),
            (edit(4, OT='\u0661\u0662'), 'history[4].OT: non-numeric value'),
            (edit(0, date='00:00'), "history[0].date: unparseable timestamp '00:00'; expected an ISO 8601"),
            (edit(3, date='01/01/2020 03:00'), 'history[3].date: unparseable timestamp'),
            (edit(3, date='01.01.2020'), 'ISO 8601'),
            (edit(3, date='1577847600'), "history[3].date: unparseable timestamp '1577847600'; expected an ISO 8601"),
            (edit(3, date=1577847600), 'history[3].date: unparseable timestamp 1577847600'),
            (edit(3, date='2020/01/01 03:00:00'), 'history[3].date: unparseable timestamp'),
            (edit(3, date='today'), 'history[3].date: unparseable timestamp'),
            (edit(3, date='2020-13-01 03:00:00'), 'history[3].date: invalid date or time'),
            (
                {'history': [dict(r, date=r['date'] + '+99:99') for r in good]},
                "history[0].date: invalid UTC offset '+99:99'",
            ),
        ]
        for b, msg in cases:
            r = post(b)
            assert r.status_code == 422 and msg in r.json()['detail'], (msg, r.status_code, r.text[:300])
            assert r.json()['errors'][0]['field'] == msg.split(':')[0] or 'ISO' in msg
        assert post({'history': good}).status_code == 200
        numeric = [dict(r, OT=str(r['OT'])) for r in good]  # numbers written as JSON strings: the same forecast
        assert post({'history': numeric}).json()['forecast'] == post({'history': good}).json()['forecast']
        iso = [dict(r, date=r['date'].replace(' ', 'T')[:16]) for r in good]  # T, no seconds: ISO 8601 too
        assert post({'history': iso}).json()['forecast'] == post({'history': good}).json()['forecast']
        # query parameters: named, not ignored; the body holds horizon and levels
        r = post({'history': good}, '/predict?horizon=1&levels=80')
        assert r.status_code == 422 and "query parameter 'horizon'" in r.json()['detail'], r.text
        assert [e['field'] for e in r.json()['errors']] == ['query.horizon', 'query.levels']
        # content types: JSON, none, or curl -d's default are read as JSON; anything else is a 415
        for ctype in ('application/json; charset=utf-8', 'application/x-www-form-urlencoded', ''):
            assert post({'history': good}, **{'content-type': ctype}).status_code == 200, ctype
        for ctype in ('text/plain', 'multipart/form-data; boundary=x', 'application/xml'):
            r = post({'history': good}, **{'content-type': ctype})
            assert r.status_code == 415 and 'send application/json' in r.json()['detail'], (ctype, r.text)
        # the auth scheme is case-insensitive (RFC 7235); the token is not
        for scheme in ('bearer', 'BEARER', 'Bearer'):
            assert post({'history': good}, Authorization=f'{scheme} s3cret-token').status_code == 200, scheme
        for hdr in ('bearer S3CRET-TOKEN', 'Basic s3cret-token', 'bearer', 's3cret-token', 'Bearer  s3cret-tokenx'):
            assert post({'history': good}, Authorization=hdr).status_code == 401, hdr


def test_load_error_never_says_version_none(monkeypatch):
    "A URI that resolves to no registry version (a path, runs:/) names the URI (redacted), not 'version None'."
    from tsforge.reload import ServedModel
    from tsforge.settings import Settings

    def broken(info):
        raise OSError('no MLmodel')

    monkeypatch.setattr(bundle, 'resolve', lambda uri: {'uri': uri})
    h = ServedModel('/srv/no/such/model', Settings())
    monkeypatch.setattr(h, '_load', broken)
    assert h.load() is False
    assert 'None' not in h.error and h.error.startswith('<path> failed to load: OSError: no MLmodel'), h.error
