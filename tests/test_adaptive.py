"""Online adaptation of the served bands (`TSFORGE_ADAPTIVE`), in process with FastAPI's TestClient on a tiny model
trained by the train job: off by default, parity with the static calibration before any feedback, feedback moving
alpha the right way, the h-step delay (actuals that no issued forecast targets change nothing), 422 naming the field,
the state in /metadata and /metrics, and a fresh state for a new model version."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from conftest import app_client
from tsforge.config import load_config

NAME = 'tsforge-adaptive-test'
H = 8


@pytest.fixture(scope='module')
def tiny_model(store, tmp_path_factory):
    "linear, L=24, H=8 on a small hourly sine (1500 rows), trained and registered by the train job; (uri, frame)."
    from tsforge.train import train

    t = pd.date_range('2020-01-01', periods=1500, freq='h')
    y = np.sin(np.arange(1500) * 2 * np.pi / 24) + 0.1 * np.random.default_rng(0).normal(size=1500)
    frame = pd.DataFrame({'date': t.strftime('%Y-%m-%d %H:%M:%S'), 'OT': y})
    csv = tmp_path_factory.mktemp('adaptive') / 'tiny.csv'
    frame.to_csv(csv, index=False)
    over = ['data.dataset=null', f'data.path={csv}', 'input_length=24', f'horizon={H}', 'model=linear']
    res = train(load_config('etth1', [*over, f'registry.model_name={NAME}', 'registry.promote=always']))
    assert res.evaluation.calibration is not None and res.evaluation.calibration.levels == [80.0, 95.0]
    return f'models:/{NAME}@champion', frame


ON = {'TSFORGE_ADAPTIVE': 'aci', 'TSFORGE_ADAPTIVE_GAMMA': '0.05'}


def _live_adaptive(c):
    "The `Adaptive` of the server's own live model."
    srv = c.app.state.server
    return srv.adaptation.for_live(srv.holder.live)


def _hist(frame, end, offset=''):
    h = frame.iloc[end - 24 : end]
    return [{'date': d + offset, 'OT': float(v)} for d, v in zip(h.date, h.OT)]


def _bands(r):
    assert r.status_code == 200, r.text
    fc = pd.DataFrame(r.json()['forecast'])
    return fc, fc[['OT_lo_80', 'OT_hi_80', 'OT_lo_95', 'OT_hi_95']].to_numpy()


def _actuals(frame, start, n, shift=0.0, offset=''):
    a = frame.iloc[start : start + n]
    return {'actuals': [{'date': d + offset, 'OT': float(v) + shift} for d, v in zip(a.date, a.OT)]}


def test_off_by_default(tiny_model):
    uri, frame = tiny_model
    with app_client(uri) as c:
        assert c.get('/metadata').json()['adaptive'] == {'mode': 'off'}
        r = c.post('/actuals', json=_actuals(frame, 500, 3))
        assert r.status_code == 409 and 'TSFORGE_ADAPTIVE' in r.json()['detail']
        assert 'tsforge_adaptive' not in c.get('/metrics').text
        assert c.app.state.server.adaptation is None
        assert '/actuals' in c.get('/openapi.json').json()['paths']


def test_parity_before_feedback_and_requested_levels(tiny_model):
    from tsforge.bundle import load_model

    uri, frame = tiny_model
    exp = load_model(uri).forecast(pd.DataFrame(_hist(frame, 500)), levels=[80, 95])
    with app_client(uri, ON) as c:
        _, b = _bands(c.post('/predict', json={'history': _hist(frame, 500), 'levels': [80, 95]}))
        assert np.array_equal(b, exp[['OT_lo_80', 'OT_hi_80', 'OT_lo_95', 'OT_hi_95']].to_numpy())
        fc = c.post('/predict', json={'history': _hist(frame, 501), 'levels': [95]}).json()['forecast']
        assert set(fc[0]) == {'date', 'OT', 'OT_lo_95', 'OT_hi_95'}
        assert set(c.post('/predict', json={'history': _hist(frame, 502)}).json()['forecast'][0]) == {'date', 'OT'}
        s = c.get('/metadata').json()['adaptive']
        assert s['mode'] == 'aci' and s['pending'] == 3 and s['scored'] == 0 and s['gamma'] == 0.05
        assert s['levels']['80']['alpha'] == pytest.approx(0.2) and s['levels']['95']['alpha'] == pytest.approx(0.05)


def test_feedback_moves_alpha_the_right_way(tiny_model):
    uri, frame = tiny_model
    with app_client(uri, ON) as c:
        ad = lambda: _live_adaptive(c)
        _, before = _bands(c.post('/predict', json={'history': _hist(frame, 500), 'levels': [80, 95]}))
        a0 = ad().alpha.copy()
        # actuals far outside every band: each step's alpha falls (a wider band next time)
        r = c.post('/actuals', json=_actuals(frame, 500, H, shift=100.0))
        assert r.status_code == 200 and r.json()['scored'] == H and r.json()['unmatched'] == 0
        assert (ad().alpha < a0).all()
        assert np.allclose(ad().alpha, a0 + 0.05 * (a0 - 1))
        _, wider = _bands(c.post('/predict', json={'history': _hist(frame, 500), 'levels': [80, 95]}))
        w0, w1 = before[:, 1] - before[:, 0], wider[:, 1] - wider[:, 0]
        assert (w1 > w0).all()
        # the same forecast origin issued again replaces the scored one; actuals on the forecast itself: alpha rises
        fc = pd.DataFrame(c.post('/predict', json={'history': _hist(frame, 520), 'levels': [80]}).json()['forecast'])
        a1 = ad().alpha.copy()
        hit = {'actuals': [{'date': d, 'OT': v} for d, v in zip(fc.date, fc.OT)]}
        assert c.post('/actuals', json=hit).json()['scored'] == H
        assert (ad().alpha > a1).all()
        meta = c.get('/metadata').json()['adaptive']
        assert meta['scored'] == 2 * H and meta['levels']['80']['running_coverage'] == pytest.approx(0.5)
        m = c.get('/metrics').text
        assert 'tsforge_adaptive_alpha{level="80"}' in m and 'tsforge_adaptive_scored 16.0' in m
        # a value for a step already scored (a correction) is not scored again, and is counted as such
        again = {'actuals': [{**hit['actuals'][0], 'OT': hit['actuals'][0]['OT'] + 99}]}
        r = c.post('/actuals', json=again).json()
        assert (r['scored'], r['unmatched'], r['already_scored']) == (0, 0, 1), r
        assert r['adaptive']['already_scored'] == 1
        # actuals adapt the server's own model only: a header naming another model is refused, not ignored
        r = c.post('/actuals', json=again, headers={'serve_multiplexed_model_id': 'other-model@champion'})
        assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'serve_multiplexed_model_id', r.text


def test_delay_actuals_before_the_horizon_change_nothing(tiny_model):
    uri, frame = tiny_model
    with app_client(uri, ON) as c:
        ad = lambda: _live_adaptive(c)
        _, b0 = _bands(c.post('/predict', json={'history': _hist(frame, 400), 'levels': [80, 95]}))
        a0 = ad().alpha.copy()
        # the history's own times and earlier: no issued forecast targets them
        r = c.post('/actuals', json=_actuals(frame, 390, 10, shift=50.0))
        assert r.json()['scored'] == 0 and r.json()['unmatched'] == 10 and np.array_equal(ad().alpha, a0)
        _, b1 = _bands(c.post('/predict', json={'history': _hist(frame, 400), 'levels': [80, 95]}))
        assert np.array_equal(b0, b1)
        # the actual of step 3 only: step 3 moves, the other steps wait for theirs
        r = c.post('/actuals', json=_actuals(frame, 402, 1, shift=50.0))
        assert r.json()['scored'] == 1
        moved = (ad().alpha != a0).any(axis=(1, 2))
        assert moved.tolist() == [j == 2 for j in range(H)]
        # posted again: already scored, nothing moves
        a1 = ad().alpha.copy()
        assert c.post('/actuals', json=_actuals(frame, 402, 1, shift=50.0)).json()['scored'] == 0
        assert np.array_equal(ad().alpha, a1)
        # times in another UTC offset match the same instants
        c.post('/predict', json={'history': _hist(frame, 450, '+02:00')})
        z = _actuals(frame, 450, 1)['actuals'][0]
        z['date'] = (pd.Timestamp(z['date']) - pd.Timedelta('2h')).strftime('%Y-%m-%dT%H:%M:%SZ')
        assert c.post('/actuals', json={'actuals': [z]}).json()['scored'] == 1


@pytest.mark.parametrize(
    'body, field',
    [
        (b'not json', 'body'),
        (b'[1]', 'body'),
        (b'{}', 'actuals'),
        (b'{"actuals": []}', 'actuals'),
        (b'{"actuals": [], "extra": 1}', 'extra'),
        (b'{"actuals": [3]}', 'actuals[0]'),
        (b'{"actuals": [{"OT": 1.0}]}', 'actuals[0].date'),
        (b'{"actuals": [{"date": "2020-01-20 00:00:00"}]}', 'actuals[0].OT'),
        (b'{"actuals": [{"date": "2020-01-20 00:00:00", "OT": "high"}]}', 'actuals[0].OT'),
        (b'{"actuals": [{"date": "2020-01-20 00:00:00", "OT": true}]}', 'actuals[0].OT'),
        (b'{"actuals": [{"date": "2020-01-20", "OT": 1}, {"date": "someday", "OT": 1}]}', 'actuals[1].date'),
    ],
)
def test_bad_actuals_get_422_naming_the_field(tiny_model, body, field):
    uri, _ = tiny_model
    with app_client(uri, ON) as c:
        r = c.post('/actuals', content=body, headers={'content-type': 'application/json'})
        assert r.status_code == 422, r.text
        assert r.json()['errors'][0]['field'] == field, r.json()


def test_actuals_that_cannot_be_matched_without_guessing_get_422_naming_the_row(tiny_model):
    "Naive next to an offset (either way), off the forecasts' grid, one time twice with two values: 422, nothing moves."
    uri, frame = tiny_model
    with app_client(uri, ON) as c:
        ad = lambda: _live_adaptive(c)

        def refused(body, field, *words):
            before = ad().state()
            r = c.post('/actuals', json=body)
            assert r.status_code == 422, r.text
            assert r.json()['errors'][0]['field'] == field, r.json()
            assert all(w in r.json()['detail'] for w in words), r.json()['detail']
            assert ad().state() == before

        # forecasts issued from a history at +02:00: naive actuals are refused, not taken as UTC
        assert c.post('/predict', json={'history': _hist(frame, 600, '+02:00')}).status_code == 200
        good = _actuals(frame, 600, 2, offset='+02:00')
        naive = {'actuals': [*good['actuals'][:1], _actuals(frame, 601, 1)['actuals'][0]]}
        refused(naive, 'actuals[1].date', 'naive', 'UTC offset')
        # off the hourly grid of the forecasts (xx:17)
        odd = {'actuals': [{'date': good['actuals'][0]['date'].replace(':00:00+', ':17:00+'), 'OT': 1.0}]}
        refused(odd, 'actuals[0].date', 'not on the h grid', ':17')
        # a query parameter is not read: named, not ignored
        r = c.post('/actuals?shift=1', json=good)
        assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'query.shift', r.text
        assert 'POST /actuals reads only its JSON body' in r.json()['detail']
        # the same instant twice (once in UTC) with two values
        t0 = pd.Timestamp(good['actuals'][0]['date']).tz_convert('UTC').strftime('%Y-%m-%dT%H:%M:%SZ')
        refused({'actuals': [*good['actuals'], {'date': t0, 'OT': 5.0}]}, 'actuals[2].date', 'twice', t0)
        # the same value twice is one actual; on-grid times no forecast targets are still unmatched, not refused
        r = c.post('/actuals', json={'actuals': [*good['actuals'], good['actuals'][0], *_hist(frame, 590, '+02:00')]})
        assert r.status_code == 200 and r.json()['scored'] == 2 and r.json()['unmatched'] == 24, r.text
    with app_client(uri, ON) as c:  # the other way round: naive forecasts, actuals with an offset
        assert c.post('/predict', json={'history': _hist(frame, 600)}).status_code == 200
        r = c.post('/actuals', json=_actuals(frame, 600, 1, offset='Z'))
        assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'actuals[0].date', r.text
        assert 'naive timestamps' in r.json()['detail']
        assert c.post('/actuals', json=_actuals(frame, 600, 1)).json()['scored'] == 1


def test_new_model_version_starts_afresh_and_bad_settings_refused(tiny_model):
    from tsforge.serve import create_app
    from tsforge.settings import Settings

    uri, frame = tiny_model
    with app_client(uri, ON) as c:
        srv = c.app.state.server
        c.post('/predict', json={'history': _hist(frame, 300)})
        c.post('/actuals', json=_actuals(frame, 300, H, shift=30.0))
        old = _live_adaptive(c)
        assert old.state()['scored'] == H
        assert 'tsforge_adaptive_running_coverage{level="80"}' in c.get('/metrics').text
        srv.holder.live = dataclasses.replace(srv.holder.live)  # what a hot reload does: a new Live swapped in
        s = c.get('/metadata').json()['adaptive']
        assert s['scored'] == 0 and s['pending'] == 0 and s['levels']['80']['alpha'] == pytest.approx(0.2)
        m = c.get('/metrics').text  # the old version's coverage is not left in the gauges
        assert 'tsforge_adaptive_running_coverage{' not in m and 'tsforge_adaptive_scored 0.0' in m, m
        assert _live_adaptive(c) is not old
    for env, name in [
        ({'adaptive': 'bogus'}, 'TSFORGE_ADAPTIVE'),
        ({'adaptive': 'aci', 'adaptive_gamma': float('nan')}, 'TSFORGE_ADAPTIVE_GAMMA'),
        ({'adaptive': 'aci', 'adaptive_max_issued': 0}, 'TSFORGE_ADAPTIVE_MAX_ISSUED'),
    ]:
        with pytest.raises(ValueError, match=name):
            create_app(uri, settings=Settings(**env))
    with pytest.MonkeyPatch.context() as mp:  # from the environment: a bad value refused by name at start
        mp.setenv('TSFORGE_ADAPTIVE', 'aci')
        for bad in ['abc', '0', '2.5', '-1']:
            mp.setenv('TSFORGE_ADAPTIVE_MAX_ISSUED', bad)
            with pytest.raises(
                ValueError, match=f"TSFORGE_ADAPTIVE_MAX_ISSUED: expected an integer .*>= 1.*got '{bad}'"
            ):
                create_app(uri, settings=Settings.from_env())
        mp.setenv('TSFORGE_ADAPTIVE_MAX_ISSUED', '50')
        assert create_app(uri, settings=Settings.from_env()).state.server.adaptation.max_issued == 50


def test_requests_to_other_models_keep_the_live_models_state(tiny_model):
    "/models/{name}/predict (even for the same name and version) neither resets nor moves the server's own state."
    from tsforge.bundle import load_model

    uri, frame = tiny_model
    with app_client(uri, ON) as c:
        version = c.get('/metadata').json()['version']
        c.post('/predict', json={'history': _hist(frame, 300)})
        assert c.post('/actuals', json=_actuals(frame, 300, 2, shift=30.0)).json()['scored'] == 2
        c.post('/predict', json={'history': _hist(frame, 310)})
        before = c.get('/metadata').json()['adaptive']
        assert before['scored'] == 2 and before['pending'] == 2 and before['levels']['80']['alpha'] != 0.2
        for path in [f'/models/{NAME}/predict?version={version}', f'/models/{NAME}@champion/predict']:
            r = c.post(path, json={'history': _hist(frame, 320), 'levels': [80, 95]})
            assert r.status_code == 200, r.text
            # not adapted: the static bands of the bundle, and nothing issued for scoring
            exp = load_model(uri).forecast(pd.DataFrame(_hist(frame, 320)), levels=[80, 95])
            assert np.array_equal(_bands(r)[1], exp[['OT_lo_80', 'OT_hi_80', 'OT_lo_95', 'OT_hi_95']].to_numpy())
            assert c.get('/metadata').json()['adaptive'] == before
        r = c.post('/actuals', json=_actuals(frame, 310, 1))
        assert r.json()['scored'] == 1 and r.json()['unmatched'] == 0
        assert c.get('/metadata').json()['adaptive']['scored'] == 3


def test_each_served_model_keeps_its_own_state():
    "`Adaptation` keeps one state per `Live`: asking for one model never resets another's; a dropped model's goes."
    import gc
    import types

    from tsforge.adaptive import Adaptation
    from tsforge.intervals import Calibration
    from tsforge.reload import Live

    cal = Calibration([80.0], 'conformal', np.ones((2, 1, 1)), np.ones((2, 1, 1)), 9)
    live = lambda: Live(types.SimpleNamespace(calibration=cal, state=None), {'version': '1'}, 0.0, 0.0)
    a, b, ada = live(), live(), Adaptation('aci', 0.05)
    first = ada.for_live(a)
    first.issue(
        '',
        np.datetime64('2024-01-01T00'),
        np.array(['2024-01-01T01', '2024-01-01T02'], 'datetime64[ns]'),
        np.zeros((2, 1, 1)),
        np.ones((2, 1, 1)),
    )
    assert ada.for_live(b) is not first and ada.for_live(b).state()['pending'] == 0
    assert ada.for_live(a) is first and first.state()['pending'] == 1
    assert ada.view(a, first).model.calibration is first.calibration() and ada.view(b, ada.for_live(b)) is not None
    assert len(ada._slots) == 2
    del b
    gc.collect()
    assert len(ada._slots) == 1 and ada.for_live(a) is first


def test_quantile_tracking_mode(tiny_model):
    uri, frame = tiny_model
    with app_client(uri, {**ON, 'TSFORGE_ADAPTIVE': 'qt'}) as c:
        _, b0 = _bands(c.post('/predict', json={'history': _hist(frame, 500), 'levels': [80, 95]}))
        assert c.post('/actuals', json=_actuals(frame, 500, H, shift=100.0)).json()['scored'] == H
        _, b1 = _bands(c.post('/predict', json={'history': _hist(frame, 500), 'levels': [80, 95]}))
        assert ((b1[:, 1] - b1[:, 0]) > (b0[:, 1] - b0[:, 0])).all()
        assert c.get('/metadata').json()['adaptive']['levels']['80']['offset_ratio'] > 1


@pytest.fixture(scope='module')
def long_model(store, tmp_path_factory):
    "linear, L=24, H=8 on a small panel (4 series; item / ts / sales), trained by the train job; (uri, frame)."
    from tsforge.data import synthetic_panel
    from tsforge.train import train

    df = synthetic_panel(4, 400, seed=5).rename(columns={'unique_id': 'item', 'ds': 'ts', 'y': 'sales'})
    d = tmp_path_factory.mktemp('adaptive-long')
    df.to_csv(d / 'panel.csv', index=False)
    (d / 'panel.yaml').write_text(
        'defaults: [base, _self_]\nname: adaptive-panel\n'
        f'data: {{path: {d / "panel.csv"}, format: long, id_col: item, time_col: ts, target: [sales]}}\n'
        f'input_length: 24\nhorizon: {H}\nregistry: {{model_name: tsforge-adaptive-long, promote: always}}\n'
    )
    res = train(load_config(str(d / 'panel.yaml')))
    assert res.evaluation.calibration is not None and 80.0 in res.evaluation.calibration.levels
    df['ts'] = df.ts.astype(str)
    return 'models:/tsforge-adaptive-long@champion', df


def test_long_format_series_scored_on_their_own_times(long_model):
    uri, df = long_model
    with app_client(uri, ON) as c:
        ad = lambda: _live_adaptive(c)
        recs, nxt = [], {}
        for sid in ['s0', 's1']:
            rows = df[df.item == sid].iloc[200 - 24 : 200 + H]
            recs += [{'item': sid, 'ts': t, 'sales': v} for t, v in zip(rows.ts[:24], rows.sales[:24])]
            nxt[sid] = rows.iloc[24:]
        r = c.post('/predict', json={'history': recs, 'levels': [80]})
        assert r.status_code == 200, r.text
        assert ad().state()['pending'] == 2
        r = c.post('/actuals', json={'actuals': [{'item': 's1', 'ts': nxt['s1'].ts.iloc[0] + 'Z', 'sales': 1.0}]})
        assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'actuals[0].ts', r.text
        assert "series 's1'" in r.json()['detail'] and ad().state()['scored'] == 0
        a0 = ad().alpha.copy()
        one = nxt['s0'].iloc[:1]  # the first actual of s0 only: one forecast step scored, s1's waits
        r = c.post('/actuals', json={'actuals': [{'item': 's0', 'ts': one.ts.iloc[0], 'sales': 1e6}]})
        assert r.status_code == 200 and r.json()['scored'] == 1, r.text
        assert (ad().alpha[0] < a0[0]).all() and np.array_equal(ad().alpha[1:], a0[1:])
        both = [{'item': s, 'ts': t, 'sales': v} for s in nxt for t, v in zip(nxt[s].ts, nxt[s].sales)]
        assert c.post('/actuals', json={'actuals': both}).json()['scored'] == 2 * H - 1
        assert ad().state()['pending'] == 0
        r = c.post('/actuals', json={'actuals': [{'item': 'zzz', 'ts': one.ts.iloc[0], 'sales': 1.0}]})
        assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'actuals.item'
        r = c.post('/actuals', json={'actuals': [{'ts': one.ts.iloc[0], 'sales': 1.0}]})
        assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'actuals[0].item'


def test_concurrent_issue_and_feedback_are_safe():
    "Threads issuing forecasts and posting actuals at once: every step is scored exactly once."
    from concurrent.futures import ThreadPoolExecutor

    from tsforge.adaptive import Adaptive
    from tsforge.intervals import Calibration

    q = np.ones((H, 1, 1))
    ad = Adaptive(Calibration([80.0], 'conformal', q, q, 100), 'aci', gamma=0.001, max_issued=10_000)
    t0 = np.datetime64('2024-01-01T00', 'ns')
    hour = np.timedelta64(1, 'h')

    def series(k):
        s = f's{k}'
        for o in range(50):
            ad.issue(s, t0 + o * hour, t0 + (o + 1 + np.arange(H)) * hour, -q, q)
            ad.feedback([s], [t0 + o * hour], np.zeros((1, 1)))  # the actual of hour o arrives
        ad.calibration()

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(series, range(8)))
    # origin o is scored by the actuals of hours o + 1 .. o + H that arrived (up to hour 49)
    per_series = sum(min(H, 49 - o) for o in range(50))
    assert ad.state()['scored'] == 8 * per_series and ad.covered[0] == 8 * per_series


@pytest.mark.parametrize('env', [ON, {}], ids=['on', 'off'])
def test_schemathesis_actuals(tiny_model, env):
    "Generated /actuals bodies (positive and negative, fixed seed), adaptation on and off: no 5xx, as documented."
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import content_type_conformance, not_a_server_error, status_code_conformance
    from schemathesis.generation import GenerationMode

    uri, frame = tiny_model
    statuses = {}
    with app_client(uri, env) as c:
        c.post('/predict', json={'history': _hist(frame, 500)})  # a forecast for some actuals to score
        schema = schemathesis.openapi.from_asgi('/openapi.json', c.app)
        op = next(r.ok() for r in schema.get_all_operations() if r.ok().path == '/actuals')
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=60,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def one(case):
                resp = case.call_and_validate(
                    checks=[not_a_server_error, status_code_conformance, content_type_conformance]
                )
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

            one()
    assert not any(s >= 500 for s in statuses), statuses
    assert set(statuses) <= ({200, 422} if env else {409}), statuses
