"""Covariates (issue 14): the `features:` config, the one feature builder shared by fit, predict and serving, every
model family using known-future covariates, static covariates in long format, and the server's `future` records
(422 cases and HTTP parity with the run's predictions). Small synthetic data where a future covariate carries the
signal; tiny model settings."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import requests

from conftest import ROOT
from tsforge.config import ConfigError, load_config
from tsforge.data import DataError
from tsforge.prepare import prepare

L, H = 28, 7


def synthetic(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """Daily demand driven by a known-future 'temp' (AR(1), so unpredictable from the past) and a workday flag, plus
    an unrelated column 'noise'."""
    rng = np.random.default_rng(seed)
    t = pd.date_range('2020-01-01', periods=n, freq='D')
    temp = np.zeros(n)
    for i in range(1, n):
        temp[i] = 0.3 * temp[i - 1] + rng.normal()
    work = (t.day_of_week < 5).astype(float)
    level = np.cumsum(rng.normal(0, 0.05, n))
    y = 10 + level + 3 * temp + 2 * work + rng.normal(0, 0.3, n)
    return pd.DataFrame({'date': t, 'y': y, 'temp': temp, 'work': work, 'noise': rng.normal(size=n)})


@pytest.fixture(scope='module')
def csv(tmp_path_factory):
    p = tmp_path_factory.mktemp('cov') / 'demand.csv'
    synthetic().to_csv(p, index=False)
    return p


def cfg_for(csv, model='linear', features=None, extra=()):
    o = [
        'data.dataset=null',
        f'data.path={csv}',
        'data.target=[y]',
        'mode=S',
        f'input_length={L}',
        f'horizon={H}',
        f'model={model}',
        'split.kind=ratio',
        'registry.model_name=cov-test',
        *extra,
    ]
    if features:
        o += [f'+features.{k}={v}' for k, v in features.items()]
    return load_config('etth1', o)


def config_error(csv, **features) -> str:
    with pytest.raises((ConfigError, DataError)) as e:
        prepare(cfg_for(csv, features=features))
    return str(e.value)


# ---------------------------------------------------------------- config validation


def test_config_refuses_unknown_keys_and_overlaps(csv):
    with pytest.raises(ConfigError, match='features.colour: unknown key'):
        cfg_for(csv, features={'colour': 'red'})
    with pytest.raises(ConfigError, match=r"\['temp'\] are in both features.future and features.past"):
        cfg_for(csv, features={'future': '[temp]', 'past': '[temp]'})
    with pytest.raises(ConfigError, match='features.calendar'):
        cfg_for(csv, features={'calendar': '[fortnight]'})
    with pytest.raises(ConfigError, match="country: unknown 'XX'"):
        cfg_for(csv, features={'holidays': '{country: XX}'})
    with pytest.raises(ConfigError, match="subdiv: unknown 'ZZZ' for AU"):
        cfg_for(csv, features={'holidays': '{country: AU, subdiv: ZZZ}'})
    c = cfg_for(csv, features={'calendar': '[dayofweek, month]', 'cyclic': 'true', 'future': 'temp'})
    assert c.features.future == ['temp'] and c.features.cyclic


def test_columns_checked_against_the_data(csv, tmp_path):
    assert "features.future: column 'rain' is not in the data" in config_error(csv, future='[rain]')
    assert "features.past: 'y' is a target column" in config_error(csv, past='[y]')
    assert 'features.static: static covariates are per-series attributes' in config_error(csv, static='[work]')
    df = synthetic(200).assign(label='a')
    p = tmp_path / 'text.csv'
    df.to_csv(p, index=False)
    msg = config_error(p, future='[label]')
    assert "features.future: column 'label'" in msg  # non-numeric: named, never silently dropped


def test_static_varying_within_a_series_names_the_series(tmp_path):
    rows = []
    for sid, size in (('a', 1.0), ('b', 2.0)):
        df = synthetic(120, seed=len(rows)).assign(uid=sid, size=size)
        rows.append(df)
    panel = pd.concat(rows)
    panel.loc[(panel.uid == 'b') & (panel.index == 50), 'size'] = 3.0
    p = tmp_path / 'panel.csv'
    panel.to_csv(p, index=False)
    cfg = cfg_for(p, extra=['data.format=long', 'data.id_col=uid'], features={'static': '[size]'})
    with pytest.raises(DataError, match="column 'size' varies within series 'b'"):
        prepare(cfg)


def test_constant_calendar_field_is_refused(csv, tmp_path):
    """A calendar field that cannot vary at the data's frequency (hour and minute on daily data, minute on hourly
    data) is a ConfigError naming it and the frequency when the features are fitted, not a constant feature logged as
    used; a train job with one ends FAILED with that message and moves no alias."""
    from conftest import champion, isolated_store, last_run, versions
    from tsforge.train import train

    msg = "features.calendar: 'hour', 'minute' are constant at frequency D over the training rows"
    with pytest.raises(ConfigError, match=msg):
        prepare(cfg_for(csv, features={'calendar': '[dayofweek, hour, minute]'}))
    with pytest.raises(ConfigError, match="'hour', 'minute' are constant at frequency D"):  # cyclic: sin and cos
        prepare(cfg_for(csv, features={'calendar': '[hour, minute]', 'cyclic': 'true'}))
    hourly = synthetic(300).assign(date=pd.date_range('2020-01-01', periods=300, freq='h'))
    p = tmp_path / 'hourly.csv'
    hourly.to_csv(p, index=False)
    one = (
        "features.calendar: 'minute' is constant at frequency h over the training rows (it can carry no "
        'information); drop it'
    )
    with pytest.raises(ConfigError) as e:
        prepare(cfg_for(p, features={'calendar': '[hour, minute]'}))
    assert str(e.value) == one
    assert prepare(cfg_for(p, features={'calendar': '[hour]'})).state.feature_state.calendar == ['hour']
    with isolated_store(tmp_path / 'home'):
        cfg = cfg_for(p, features={'calendar': '[hour]'}, extra=['registry.model_name=cov-const'])
        before = train(cfg).version
        assert champion('cov-const') == str(before)
        with pytest.raises(ConfigError) as e:
            train(cfg_for(p, features={'calendar': '[hour, minute]'}, extra=['registry.model_name=cov-const']))
        assert str(e.value) == one
        run = last_run()
        assert run.info.status == 'FAILED' and run.data.tags['tsforge.error'] == f'ConfigError: {one}'
        assert champion('cov-const') == str(before) and set(versions('cov-const')) == {str(before)}


# ---------------------------------------------------------------- the builder


def test_no_features_changes_nothing(csv):
    p = prepare(cfg_for(csv))
    assert p.cov is None and p.state.features is None and 'features' not in p.state.to_dict()


def test_one_builder_for_training_and_serving(csv):
    "The covariates a request builds for its window are the rows training built for the same window (same code)."
    from tsforge import gbm, features
    from tsforge.request import RequestTail, check_future, tail_windows

    assert gbm.calendar_values is features.calendar_values  # lightgbm's calendar fields are the shared ones
    cfg = cfg_for(
        csv,
        features={
            'calendar': '[dayofweek]',
            'cyclic': 'true',
            'holidays': '{country: AU, subdiv: VIC}',
            'future': 'temp',
        },
    )
    prep = prepare(cfg)
    st = prep.state
    assert st.feature_state.known_names == ['dayofweek_sin', 'dayofweek_cos', 'holiday', 'temp']
    test = prep.windows('test')
    o = int(test.origins[3])
    f = prep.frame
    tail = RequestTail(
        f.date.to_numpy()[o - L : o].astype('datetime64[ns]'),
        f[['y']].to_numpy()[o - L : o],
        extra=f[['temp']].to_numpy()[o - L : o],
    )
    check_future(st, tail, f.date.astype(str).tolist()[o : o + H], {'temp': f.temp.tolist()[o : o + H]}, H, H)
    w = tail_windows(st, tail)
    np.testing.assert_allclose(w.future().all()[0], test.future().all()[3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.known_inputs().all()[0], test.known_inputs().all()[3], rtol=0, atol=1e-12)


def test_holidays_on_the_local_day_of_tz_aware_data(tmp_path):
    """Tokyo data (+09:00, data.tz=Asia/Tokyo): the holiday flag covers 00:00-23:00 local of each holiday (not 09:00
    to 08:00 the next day, the UTC date), like the calendar fields; a request sending the same +09:00 times builds the
    same covariates as training."""
    from tsforge.features import holiday_flags
    from tsforge.request import RequestError, RequestTail, parse_times, tail_windows
    from tsforge.preprocess import make_windows

    t = pd.date_range('2023-12-25', '2024-01-12 23:00', freq='h', tz='Asia/Tokyo')
    rng = np.random.default_rng(0)
    p = tmp_path / 'tokyo.csv'
    pd.DataFrame({'date': [x.isoformat() for x in t], 'y': rng.normal(size=len(t))}).to_csv(p, index=False)
    assert pd.read_csv(p).date[0] == '2023-12-25T00:00:00+09:00'
    cfg = cfg_for(p, features={'holidays': '{country: JP}', 'calendar': '[hour]'}, extra=['data.tz=Asia/Tokyo'])
    prep = prepare(cfg)
    st, fs = prep.state, prep.state.feature_state
    j = fs.known_names.index('holiday')
    flag = prep.cov.known[:, j] * fs.known_std[j] + fs.known_mean[j]
    local = prep.frame.date
    assert str(local.dt.tz) == 'Asia/Tokyo'
    days = {'2024-01-01', '2024-01-08'}  # New Year's Day, Coming of Age Day
    np.testing.assert_allclose(flag, local.dt.strftime('%Y-%m-%d').isin(days).to_numpy(float), atol=1e-9)
    on = local[flag > 0.5]
    assert len(on) == 48 and sorted(set(on.dt.hour)) == list(range(24))
    assert on.iloc[0] == pd.Timestamp('2024-01-01 00:00', tz='Asia/Tokyo')
    assert on.iloc[23] == pd.Timestamp('2024-01-01 23:00', tz='Asia/Tokyo')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # numpy's 'no explicit representation of timezones' is gone too
        assert holiday_flags(local.to_numpy(), 'JP').sum() == 48
    # serving: a request whose times carry +09:00 (history up to 21:00 the day before a holiday, forecast across it)
    o = int(np.flatnonzero(local == pd.Timestamp('2024-01-07 21:00', tz='Asia/Tokyo'))[0])
    hist = [x.isoformat() for x in local.iloc[o - L : o]]
    times, off = parse_times(st, hist)
    assert off == '+09:00'
    tail = RequestTail(times, prep.frame[['y']].to_numpy()[o - L : o], offset=off)
    w = tail_windows(st, tail)
    train_w = make_windows(st, prep.scaled, prep.times, np.array([o]), cov=prep.cov)
    np.testing.assert_allclose(w.future().all()[0], train_w.future().all()[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.known_inputs().all()[0], train_w.known_inputs().all()[0], rtol=0, atol=1e-12)
    assert (w.future().all()[0, :, j] * fs.known_std[j] + fs.known_mean[j]).round().tolist() == [0, 0, 0, 1, 1, 1, 1]
    # the windows' own first-step times (lightgbm's calendar fields, cyclenet's phase) are the wall clock too, not UTC
    assert train_w.times[0] == w.times[0] == np.datetime64('2024-01-07T21:00')
    assert prep.windows('test').times[0] == local.iloc[int(prep.windows('test').origins[0])].tz_localize(None)
    # the same instants sent in UTC (or any offset) are read on the model's clock, Tokyo's: the same covariates
    assert st.time_zone == 'Asia/Tokyo'
    for fmt in (lambda x: x.tz_convert('UTC').isoformat().replace('+00:00', 'Z'), lambda x: x.tz_convert('-05:00')):
        times, off = parse_times(st, [fmt(x) for x in local.iloc[o - L : o]])
        w2 = tail_windows(st, RequestTail(times, prep.frame[['y']].to_numpy()[o - L : o], offset=off))
        np.testing.assert_allclose(w2.future().all()[0], train_w.future().all()[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(w2.known_inputs().all()[0], train_w.known_inputs().all()[0], rtol=0, atol=1e-12)
        assert w2.times[0] == np.datetime64('2024-01-07T21:00')
    # a time without an offset is not guessed to be Tokyo's (or UTC): a RequestError naming the first record
    with pytest.raises(RequestError) as e:
        parse_times(st, [x.tz_localize(None).isoformat() for x in local.iloc[o - L : o]])
    assert e.value.field == 'history[0].date' and 'Asia/Tokyo' in e.value.msg and '+09:00' in e.value.msg


# ---------------------------------------------------------------- every family uses them

TINY = {
    'linear': {},
    'lightgbm': {'n_estimators': 200, 'num_threads': 1, 'min_data_in_leaf': 20, 'folds': 1},
    # a constant learning rate: a few hundred windows make a few batches per epoch (the defaults decay per epoch)
    'dlinear': {'epochs': 30, 'progress': False, 'patience': 5, 'lr_decay': 1.0},
    'patchtst': {
        'epochs': 30,
        'progress': False,
        'patience': 5,
        'patch_len': 7,
        'stride': 7,
        'n_layers': 1,
        'lr_decay': 1.0,
        'lr': 5e-3,
    },
    'rlinear': {'epochs': 30, 'progress': False, 'patience': 5, 'lr_decay': 1.0, 'lr': 0.01},
    'tft': {'epochs': 15, 'progress': False, 'patience': 4},
    'cyclenet': {
        'epochs': 30,
        'progress': False,
        'patience': 5,
        'lr_decay': 1.0,
    },  # the phase passes the covariate head
}


@pytest.mark.parametrize('name', list(TINY))
def test_covariates_beat_no_covariates(name, csv):
    from tsforge.train import fit_evaluate

    def mse(features):
        cfg = cfg_for(csv, name, features)
        cfg = cfg.model_copy(update={'model_params': {**cfg.model_params, **TINY[name]}})
        return fit_evaluate(cfg, keep_predictions=False).metrics['test_mse']

    without = mse(None)
    with_cov = mse({'future': 'temp', 'calendar': '[dayofweek]'})
    assert with_cov < 0.7 * without, (name, with_cov, without)


# ---------------------------------------------------------------- bundle and server


@pytest.fixture(scope='module')
def served(csv, tmp_path_factory):
    """linear and tft with future covariates trained and logged in a throw-away store; linear registered and served by
    a real uvicorn on 127.0.0.1."""
    from conftest import isolated_store
    from tsforge import bundle, registry, runs
    from tsforge.serve import local_server
    from tsforge.train import fit_evaluate, predictions_frame
    from conftest import free_port

    feats = {'future': 'temp', 'calendar': '[dayofweek]', 'holidays': '{country: AU}'}
    with isolated_store(tmp_path_factory.mktemp('home')) as home:
        out = {}
        for name in ('linear', 'tft'):
            cfg = cfg_for(csv, name, feats, [f'registry.model_name=cov-{name}'])
            cfg = cfg.model_copy(
                update={
                    'model_params': {**cfg.model_params, **TINY.get(name, {}), 'epochs': 2}
                    if name == 'tft'
                    else cfg.model_params
                }
            )
            prep = prepare(cfg)
            ev = fit_evaluate(cfg, prep)
            with runs.start_run(cfg, f'cov-{name}') as run:
                info = bundle.log_model(ev.model, cfg, prep.train_rows())
            out[name] = dict(
                cfg=cfg, prep=prep, ev=ev, pred=predictions_frame(prep, ev), info=info, run=run.info.run_id
            )
        v = registry.register(out['linear']['info'].model_uri, 'cov-linear', out['linear']['run'])
        registry.set_alias('cov-linear', 'champion', v)
        with local_server('models:/cov-linear@champion', port=free_port(), env={'TSFORGE_HOME': str(home)}) as (url, _):
            out['url'] = url
            yield out


def request_body(prep, o, h=H, drop=None):
    f = prep.frame.copy()
    f['date'] = f['date'].astype(str)
    hist = f.iloc[o - L : o][['date', 'y', 'temp']].to_dict(orient='records')
    fut = f.iloc[o : o + h][['date', 'temp']].to_dict(orient='records')
    return {'history': hist, 'future': fut, 'horizon': h}


@pytest.mark.parametrize('name', ['linear', 'tft'])
def test_bundle_round_trip_with_future_rows(served, name):
    "The pyfunc bundle (history rows, then forecast rows with empty targets) gives the run's predictions (1e-6)."
    import mlflow

    s = served[name]
    prep, ev = s['prep'], s['ev']
    m = mlflow.pyfunc.load_model(s['info'].model_uri)
    for i in (0, len(ev.test_origins) // 2, -1):
        o = int(ev.test_origins[i])
        rows = prep.frame.iloc[o - L : o + H][['date', 'y', 'temp']].copy()
        rows.loc[rows.index[-H:], 'y'] = np.nan
        rows['date'] = rows['date'].astype(str)
        fc = m.predict(rows, params={'horizon': H})
        expected = prep.state.inverse_transform(ev.test_pred[i])[:, 0]
        assert np.abs(fc.y.to_numpy() - expected).max() < 1e-6


def test_http_parity_and_shorter_horizon(served):
    s, url = served['linear'], served['url']
    prep, pred = s['prep'], s['pred']
    by = pred.groupby('origin')
    for o in prep.origins('test')[::40]:
        r = requests.post(f'{url}/predict', json=request_body(prep, int(o)))
        assert r.status_code == 200, r.text
        exp = by.get_group(prep.frame.date.iloc[o - 1]).sort_values('step').y_pred.to_numpy()
        assert np.abs(pd.DataFrame(r.json()['forecast']).y.to_numpy() - exp).max() < 1e-6
    o = int(prep.origins('test')[5])
    r = requests.post(f'{url}/predict', json=request_body(prep, o, h=3))
    exp = by.get_group(prep.frame.date.iloc[o - 1]).sort_values('step').y_pred.to_numpy()[:3]
    assert r.status_code == 200 and np.abs(pd.DataFrame(r.json()['forecast']).y.to_numpy() - exp).max() < 1e-6


def test_serve_load_covariate_bodies_are_served(served):
    "bench/serve_load.py --covariates-model: its request bodies (histories and future records) are answered 200."
    import importlib.util

    spec = importlib.util.spec_from_file_location('serve_load', ROOT / 'bench' / 'serve_load.py')
    serve_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_load)
    bodies = serve_load.covariate_bodies('models:/cov-linear@champion', n=3)
    for b in bodies:
        body = json.loads(b)
        assert len(body['future']) == H and set(body['future'][0]) == {'date', 'temp'}
        assert set(body['history'][0]) == {'date', 'y', 'temp'}
        r = requests.post(f'{served["url"]}/predict', data=b, headers={'Content-Type': 'application/json'})
        assert r.status_code == 200 and len(r.json()['forecast']) == H, r.text


def test_metadata_and_openapi_show_the_future_schema(served):
    url = served['url']
    meta = requests.get(f'{url}/metadata').json()['features']
    assert meta['future_columns'] == ['temp'] and meta['future_records']['required'] and meta['used_by_model']
    spec = requests.get(f'{url}/openapi.json').json()
    assert spec['components']['schemas']['FutureRecord']['required'] == ['date', 'temp']
    ex = spec['components']['schemas']['PredictRequest']['examples'][0]
    assert len(ex['future']) == ex['horizon']
    assert requests.post(f'{url}/predict', json=ex).status_code == 200  # the documented example is valid


def _bad_cases(prep, o):
    def edit(fn):
        b = request_body(prep, o)
        fn(b)
        return b

    t = lambda k: str(prep.frame.date.iloc[o + k])
    half = lambda k: str(prep.frame.date.iloc[o + k] + pd.Timedelta('12h'))
    return [
        ('missing', edit(lambda b: b.pop('future')), 'future', 'Field required'),
        ('short', edit(lambda b: b['future'].pop()), 'future', f'missing records: got {H - 1}, expected'),
        ('extra', edit(lambda b: b['future'].append(dict(b['future'][-1]))), 'future', 'extra records'),
        ('misaligned', edit(lambda b: b['future'][2].update(date=half(2))), 'future[2].date', f'expected {t(2)}'),
        ('order', edit(lambda b: b['future'][3].update(date=t(2))), 'future[3].date', 'strictly increasing'),
        ('text', edit(lambda b: b['future'][4].update(temp='warm')), 'future[4].temp', "non-numeric value 'warm'"),
        ('null', edit(lambda b: b['future'][1].update(temp=None)), 'future[1].temp', 'missing value'),
        ('column', edit(lambda b: [r.pop('temp') for r in b['future']]), 'future.temp', 'missing column'),
        ('history', edit(lambda b: [r.pop('temp') for r in b['history']]), 'history.temp', 'missing column'),
        ('notalist', edit(lambda b: b.update(future={'date': 1})), 'future', 'valid list'),
        ('unread', edit(lambda b: b['future'][0].update(OT=1.0)), 'future[0].OT', 'not read by this model'),
        ('spaced', edit(lambda b: b['future'][0].update({'temp ': 1.0})), 'future[0].temp ', "did you mean 'temp'?"),
    ]


def test_bad_future_records_are_422_naming_field_and_row(served):
    s, url = served['linear'], served['url']
    prep = s['prep']
    o = int(prep.origins('test')[0])
    for case, body, field, msg in _bad_cases(prep, o):
        r = requests.post(f'{url}/predict', json=body)
        assert r.status_code == 422, (case, r.text)
        err = r.json()['errors'][0]
        assert err['field'] == field and msg in err['msg'], (case, err)
    # the expected timestamps are named
    r = requests.post(f'{url}/predict', json=_bad_cases(prep, o)[1][1])
    assert str(prep.frame.date.iloc[o]) in r.json()['errors'][0]['msg']


def test_cv_folds_fit_their_own_features(csv):
    "The cv job's folds fit the feature state on their own training rows and their covariates help as in training."
    from tsforge.cv import run_folds

    def folds(features):
        cfg = cfg_for(csv, 'linear', features, ['cv.executor=serial', 'cv.n_windows=2'])
        return run_folds(cfg)

    with_cov, without = folds({'future': 'temp', 'calendar': '[dayofweek]'}), folds(None)
    assert all(r.state.feature_state.future == ['temp'] for r in with_cov)
    assert with_cov[0].state.feature_state.known_mean != with_cov[1].state.feature_state.known_mean  # own rows
    assert np.mean([r.metrics['mse'] for r in with_cov]) < 0.7 * np.mean([r.metrics['mse'] for r in without])


def test_long_format_static_and_future_through_the_bundle(tmp_path):
    """Long format: static covariates come from the model (a request sends none), each series' future records are
    checked against its own history; the forecasts equal the evaluation's (1e-6); errors name the series."""
    from tsforge.bundle import TsforgeModel
    from tsforge.request import RequestError
    from tsforge.train import fit_evaluate

    parts = []
    for k, (sid, size) in enumerate((('a', 1.0), ('b', 3.0))):
        df = synthetic(300, seed=k).assign(uid=sid, size=size)
        df['y'] = df.y * size
        parts.append(df)
    p = tmp_path / 'panel.csv'
    pd.concat(parts).to_csv(p, index=False)
    cfg = cfg_for(p, 'linear', {'future': 'temp', 'static': '[size]'}, ['data.format=long', 'data.id_col=uid'])
    prep = prepare(cfg)
    assert prep.state.feature_state.static_values == [[1.0], [3.0]]
    ev = fit_evaluate(cfg, prep)
    m = TsforgeModel(ev.model, cfg.model_dump(mode='json'))
    test = prep.windows('test')
    i = [int(np.flatnonzero(test.series == s)[2]) for s in (0, 1)]
    hist, fut = [], []
    for j in i:
        o = int(test.origins[j])
        hist.append(prep.frame.iloc[o - L : o][['uid', 'date', 'y', 'temp']])
        fut.append(prep.frame.iloc[o : o + H][['uid', 'date', 'temp']])
    fc = m.forecast(pd.concat(hist), H, pd.concat(fut))
    exp = np.concatenate(
        [prep.state.inverse_transform(ev.test_pred[j], series=np.array([s]))[:, 0] for s, j in enumerate(i)]
    )
    assert np.abs(fc.y.to_numpy() - exp).max() < 1e-6
    with pytest.raises(RequestError, match="series 'b': missing records"):
        m.forecast(pd.concat(hist), H, pd.concat(fut).iloc[:-1])
    # static values sent with the history must be the model's own (it uses those): equal ones pass, others are named
    same = [h.assign(size=s) for h, s in zip(hist, (1.0, 3.0))]
    assert np.abs(m.forecast(pd.concat(same), H, pd.concat(fut)).y.to_numpy() - exp).max() < 1e-6
    other = [same[0], same[1].assign(size=99.0)]
    with pytest.raises(
        RequestError, match=r"history\[28\].size: 99 is not series 'b'.s static value 3, which the model"
    ):
        m.forecast(pd.concat(other), H, pd.concat(fut))


def test_train_job_logs_features_and_tft_importances(csv, tmp_path):
    "The train job tags the run with the features used and logs the TFT's variable-selection weights as a plot."
    import mlflow
    from mlflow import MlflowClient

    from conftest import isolated_store
    from tsforge.train import train

    with isolated_store(tmp_path / 'home'):
        cfg = cfg_for(csv, 'tft', {'future': 'temp', 'calendar': '[dayofweek]'}, ['registry.enabled=false'])
        cfg = cfg.model_copy(update={'model_params': {**cfg.model_params, 'epochs': 1, 'progress': False}})
        res = train(cfg)
        run = MlflowClient().get_run(res.run_id)
        assert run.data.tags['tsforge.features.known'] == 'dayofweek,temp'
        files = {f.path for f in MlflowClient().list_artifacts(res.run_id)}
        assert {'variable_importance.png', 'variable_importance.json'} <= files
        imp = mlflow.artifacts.load_dict(f'runs:/{res.run_id}/variable_importance.json')
        assert set(imp['decoder']) == {'dayofweek', 'temp'} and abs(sum(imp['encoder'].values()) - 1) < 1e-4


def test_tft_is_deterministic_and_gives_quantiles(csv):
    from tsforge.train import fit_evaluate

    cfg = cfg_for(csv, 'tft', {'future': 'temp', 'calendar': '[dayofweek]'})
    cfg = cfg.model_copy(update={'model_params': {**cfg.model_params, 'epochs': 2, 'progress': False}})
    a, b = fit_evaluate(cfg), fit_evaluate(cfg)
    assert np.array_equal(a.test_pred, b.test_pred)
    q = a.model.predict_quantiles(prepare(cfg).windows('test'))
    assert q.shape[-1] == 4 and np.allclose(q[..., 0], a.test_pred)
