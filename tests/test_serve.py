"""HTTP serving: readiness, metadata, parity with the run's predictions and body limits with a real uvicorn on
127.0.0.1; shorter horizons, bad requests and the OpenAPI document with the same app in this process."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from conftest import app_client
from tsforge.config import load_config
from tsforge.prepare import prepare


@pytest.fixture(scope='module')
def prep():
    return prepare(load_config('etth1'))


@pytest.fixture(scope='module')
def predictions(trained):
    from tsforge.store import configure

    configure()
    return pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=trained['run_id'], artifact_path='predictions.parquet')
    )


@pytest.fixture(scope='module')
def app(trained):
    "The app serving the trained etth1 champion in this process (the same app as the `server` fixture's uvicorn)."
    with app_client('models:/tsforge-etth1@champion') as client:
        yield client


def history(prep, o, extra=0):
    h = prep.frame.iloc[o - 336 - extra : o].copy()
    h['date'] = h['date'].astype(str)
    return h.to_dict(orient='records')


def test_health_ready_metadata(server, trained):
    assert requests.get(f'{server}/health').json() == {'status': 'ok'}
    assert requests.get(f'{server}/ready').status_code == 200
    meta = requests.get(f'{server}/metadata').json()
    assert (
        meta['name'] == 'tsforge-etth1'
        and meta['version'] == trained['version']
        and meta['run_id'] == trained['run_id']
    )
    assert (meta['horizon'], meta['input_length'], meta['frequency']) == (96, 336, 'h')
    assert meta['time_zone'] is None  # ETT's timestamps carry no offset: requests send none
    assert meta['required_columns'] == ['date', 'OT'] and meta['forecast_columns'] == ['OT']


def test_parity_with_run_predictions(server, prep, predictions):
    "Test-set windows sent over HTTP give the run's predictions.parquet to 1e-6."
    test_origins = prep.origins('test')
    picks = test_origins[np.linspace(0, len(test_origins) - 1, 12).astype(int)]
    by_origin = predictions.groupby('origin')
    for k, o in enumerate(picks):
        r = requests.post(f'{server}/predict', json={'history': history(prep, int(o), extra=k * 7)})
        assert r.status_code == 200, r.text
        body = r.json()
        fc = pd.DataFrame(body['forecast'])
        exp = by_origin.get_group(prep.frame.date.iloc[o - 1]).sort_values('step')
        assert len(fc) == 96 and fc.date.tolist() == exp.target_time.astype(str).tolist()
        assert np.abs(fc.OT.to_numpy() - exp.y_pred.to_numpy()).max() < 1e-6
        assert body['model']['name'] == 'tsforge-etth1'


def test_shorter_horizon(app, prep, predictions):
    o = int(prep.origins('test')[0])
    r = app.post('/predict', json={'history': history(prep, o), 'horizon': 5})
    fc = pd.DataFrame(r.json()['forecast'])
    exp = predictions[predictions.origin == prep.frame.date.iloc[o - 1]].sort_values('step').y_pred.to_numpy()[:5]
    assert len(fc) == 5 and np.allclose(fc.OT, exp, atol=1e-6)


def _bad(prep):
    o = int(prep.origins('test')[0])
    good = history(prep, o)

    def edit(i, **kw):
        h = [dict(r) for r in good]
        h[i].update(kw)
        return h

    def drop(col):
        return [{k: v for k, v in r.items() if k != col} for r in good]

    return [
        ('too few rows', {'history': good[:100]}, 422, 'history: has 100 records; the model needs at least 336'),
        ('missing column', {'history': drop('OT')}, 422, "history.OT: missing column(s) ['OT']"),
        ('missing time column', {'history': drop('date')}, 422, 'history.date: missing time column'),
        (
            'spaced column name',
            {'history': [{('OT ' if k == 'OT' else k): v for k, v in r.items()} for r in good]},
            422,
            "history.OT: missing column; the records have 'OT ', which differs only by spaces: send it as 'OT'",
        ),
        ('NaN', {'history': edit(300, OT=float('nan'))}, 422, 'history[300].OT: missing value (NaN or null)'),
        ('null', {'history': edit(12, OT=None)}, 422, 'history[12].OT: missing value (NaN or null)'),
        ('non-numeric', {'history': edit(7, OT='warm')}, 422, "history[7].OT: non-numeric value 'warm'"),
        (
            'unparseable timestamp',
            {'history': edit(3, date='someday')},
            422,
            "history[3].date: unparseable timestamp 'someday'",
        ),
        (
            'non-increasing',
            {'history': edit(200, date=good[198]['date'])},
            422,
            'history[200].date: timestamps must be strictly increasing',
        ),
        (
            'gap',
            {'history': good[:150] + good[151:] + [dict(good[-1], date='2017-10-24 00:00:00')]},
            422,
            'must be one h step apart',
        ),
        ('horizon too large', {'history': good, 'horizon': 97}, 422, 'horizon: must be an integer from 1 to 96'),
        ('horizon zero', {'history': good, 'horizon': 0}, 422, 'horizon: must be an integer from 1 to 96'),
        ('horizon text', {'history': good, 'horizon': 'ten'}, 422, 'horizon: Input should be a valid integer'),
        ('history not a list', {'history': 'yesterday'}, 422, 'history: Input should be a valid list'),
        ('empty history', {'history': []}, 422, 'history: List should have at least 1 item'),
        ('record not an object', {'history': [1, 2]}, 422, 'history[0]: Input should be a valid dictionary'),
        ('unknown key', {'history': good, 'horizn': 5}, 422, 'horizn: Extra inputs are not permitted'),
        ('no history', {}, 422, 'history: Field required'),
        ('nested value', {'history': edit(5, OT=[1.0])}, 422, 'history[5].OT'),
        ('infinite', {'history': edit(9, OT=1e999)}, 422, 'history[9].OT: infinite value inf'),
        (  # a model trained without features would drop them unread
            'future to a model without features',
            {'history': good, 'future': [{'date': '2018-06-26 20:00:00'}]},
            422,
            'future: this model was trained without features: it reads no future records',
        ),
    ]


@pytest.mark.parametrize('case', range(20))
def test_bad_requests_get_4xx(app, prep, case):
    name, body, status, expected = _bad(prep)[case]
    r = app.post('/predict', content=json.dumps(body), headers={'content-type': 'application/json'})
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    assert expected in r.json()['detail'], (name, r.json()['detail'])


def test_malformed_bodies(app):
    r = app.post('/predict', content='', headers={'content-type': 'application/json'})
    assert r.status_code == 422 and 'body' in r.json()['detail'].lower()
    r = app.post('/predict', content='{"history": [', headers={'content-type': 'application/json'})
    assert r.status_code == 422 and 'invalid JSON' in r.json()['detail']
    r = app.post('/predict', content=b'\xff\xfe', headers={'content-type': 'application/json'})
    assert r.status_code == 422


def test_oversized_body_413(server):
    big = b'{"history": [' + b'{"date": "2020-01-01", "OT": 1.0},' * 300_000 + b'{}]}'
    r = requests.post(f'{server}/predict', data=big, headers={'content-type': 'application/json'})
    assert r.status_code == 413 and 'larger than' in r.json()['detail']

    def chunks():  # no Content-Length: the limit counts the streamed body
        for _ in range(300):
            yield b' ' * 65536

    r = requests.post(f'{server}/predict', data=chunks(), headers={'content-type': 'application/json'})
    assert r.status_code == 413


def test_openapi_documents_schema(app):
    assert app.get('/docs').status_code == 200
    spec = app.get('/openapi.json').json()
    req = spec['components']['schemas']['PredictRequest']
    assert 'history' in req['properties'] and req['examples'][0]['history'][0]['date'].startswith('2018')
    assert '422' in spec['paths']['/predict']['post']['responses']
