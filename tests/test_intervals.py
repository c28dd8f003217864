"""Prediction intervals and input drift, end to end: calibration maths, the train job's bands and scores, the bundle
round trip, the pyfunc with `levels`, and a real uvicorn answering bands (parity with the run's predictions), 422 for
an uncalibrated level, drift warnings and their /metrics export."""

import os
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from conftest import ROOT, free_port, stop, uvicorn_cmd, wait_http
from tsforge.config import ConfigError, load_config
from tsforge.intervals import calibrate, conformal_rank, cqr_pairs, holdout_split, interval_scores

NAME = 'tsforge-intervals-test'
OVERRIDES = ['model=linear', 'input_length=96', 'horizon=24', f'registry.model_name={NAME}', 'registry.promote=always']


def test_rank_and_coverage_on_exchangeable_data():
    assert [conformal_rank(9, 80), conformal_rank(19, 95), conformal_rank(1000, 80)] == [8, 19, 801]
    rng = np.random.default_rng(1)
    sd = np.linspace(0.2, 3.0, 12)[None, :, None]
    cal = calibrate(np.zeros((400, 12, 2)), rng.standard_t(5, size=(400, 12, 2)) * sd, [50, 80, 95])
    y = rng.standard_t(5, size=(4000, 12, 2)) * sd
    lo, hi = cal.bands(np.zeros_like(y))
    for j, lv in enumerate(cal.levels):
        s = interval_scores(y, lo[:, :, j], hi[:, :, j], lv)
        assert abs(s['coverage'] - lv / 100) < 0.02, (lv, s)
        assert s['coverage_lo'] <= s['coverage'] <= s['coverage_hi']
    assert (np.diff(cal.upper[:, :, 0], axis=0) > 0).mean() > 0.8  # widening with the step


def test_signed_variant_is_asymmetric_and_covers():
    rng = np.random.default_rng(2)
    e = rng.lognormal(size=(1000, 6, 1)) - 1.6
    cal = calibrate(np.zeros_like(e), e, [80, 90], 'conformal_signed')
    assert (cal.upper > cal.lower).all()
    y = rng.lognormal(size=(5000, 6, 1)) - 1.6
    lo, hi = cal.bands(np.zeros_like(y))
    below, above = (y[:, :, None] < lo).mean(axis=(0, 1, 3)), (y[:, :, None] > hi).mean(axis=(0, 1, 3))
    assert np.allclose(below, [0.1, 0.05], atol=0.015) and np.allclose(above, [0.1, 0.05], atol=0.015)
    with pytest.raises(ValueError, match='at least 39'):
        calibrate(np.zeros((30, 6, 1)), e[:30], [95], 'conformal_signed')


def test_holdout_split_never_overlaps():
    o = np.arange(500, 1000)
    sel, cal = holdout_split(o, 48, 0.25)
    assert cal.sum() == 125 and o[sel].max() + 48 <= o[cal].min() and not (sel & cal).any()


def test_config_section_is_validated():
    cfg = load_config('etth1', ['intervals.levels=[95,80]', 'intervals.method=conformal_signed'])
    assert cfg.intervals.levels == [80, 95] and cfg.intervals.method == 'conformal_signed'
    for o, msg in [
        ('intervals.levels=[80,120]', 'intervals.levels'),
        ('intervals.method=gauss', 'intervals.method'),
        ('+intervals.width=3', 'intervals.width: unknown key'),
        ('intervals.source=test', 'intervals.source'),
        ('intervals.folds=0', 'intervals.folds'),
        ('intervals.scale=window', 'intervals.scale'),
        ('intervals.scale=input intervals.method=cqr', 'intervals.scale: input applies to method conformal'),
    ]:
        with pytest.raises(ConfigError, match=msg):
            load_config('etth1', o.split())


@pytest.fixture(scope='module')
def trained_iv(store):
    "linear, L=96, H=24 on ETTh1 S, trained by the train job in this process (registered and promoted)."
    from tsforge.train import train

    res = train(load_config('etth1', OVERRIDES))
    return res


def test_train_logs_interval_scores_and_bands(trained_iv):
    m = trained_iv.metrics
    for lv in ('80', '95'):
        for k in ('coverage', 'coverage_lo', 'width', 'winkler', 'msis', 'worst_step_coverage', 'path_coverage'):
            assert np.isfinite(m[f'test_{lv}_{k}']), k
    # ETTh1's validation months are more volatile than its test months: the bands over-cover a little (no exact
    # exchangeability on real series); they must not under-cover
    assert 0.77 < m['test_80_coverage'] < 0.97 and 0.93 < m['test_95_coverage'] <= 1, m
    assert m['test_95_width'] > m['test_80_width'] > 0 and m['test_80_path_coverage'] < m['test_80_coverage']
    ev = trained_iv.evaluation
    assert ev.calibration.n == m['calibration_windows'] and ev.calibration.lower.shape == (24, 2, 1)
    val = trained_iv.prep.origins('val')
    assert m['calibration_windows'] == np.ceil(0.33 * len(val))
    p = trained_iv.predictions
    assert {'lo_80', 'hi_80', 'lo_95', 'hi_95'} <= set(p.columns)
    assert (p.lo_95 <= p.lo_80).all() and (p.lo_80 <= p.y_pred).all() and (p.hi_95 >= p.hi_80).all()
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(trained_iv.run_id)}
    assert 'bands.png' in arts


def test_short_data_drops_levels_it_cannot_calibrate(store):
    from tsforge.prepare import prepare
    from tsforge.train import fit_evaluate

    cfg_overrides_short = ['model=naive', 'input_length=48', 'horizon=12', 'intervals.holdout=0.005']
    cfg = load_config('etth1', cfg_overrides_short)
    with pytest.warns(
        UserWarning, match=r'too few for \[95.0\] \(a 95% band needs at least 19\); calibrated: \[80.0\]'
    ):
        ev = fit_evaluate(cfg, prepare(cfg))
    assert ev.calibration.levels == [80.0] and 'test_95_coverage' not in ev.metrics
    assert ev.metrics['calibrated_levels'] == 1
    gate = load_config('etth1', [*cfg_overrides_short, 'registry.metric=test_95_winkler'])
    with pytest.raises(ConfigError, match='registry.metric=test_95_winkler compares that band'):
        fit_evaluate(gate, prepare(gate))  # the gate's metric would be missing: the alias could never move


def test_chosen_levels_are_never_dropped_and_holdout_leaves_selection_windows(store):
    """Levels the experiment chose (not the defaults) that the calibration windows cannot bound stop the job, naming
    intervals.levels; a holdout that leaves no window for model selection names intervals.holdout (it was an
    AttributeError deep in the model)."""
    from tsforge.prepare import prepare
    from tsforge.train import fit_evaluate

    cfg = load_config('etth1', ['model=naive', 'input_length=48', 'horizon=24', 'intervals.levels=[99.9]'])
    with pytest.raises(
        ConfigError,
        match=r'intervals.levels: \d+ calibration windows .* too few for \[99.9\] '
        r'\(a 99.9% band needs at least 999\); lower the levels',
    ):
        fit_evaluate(cfg, prepare(cfg))
    cfg = load_config('etth1', ['model=linear', 'input_length=48', 'horizon=24', 'intervals.holdout=0.995'])
    with pytest.raises(ConfigError, match=r'intervals.holdout=0.995 leaves no validation window for model selection'):
        fit_evaluate(cfg, prepare(cfg))


@pytest.mark.parametrize(
    'overrides, expected',
    [
        (['intervals.folds=5'], 'intervals.folds=5 is set but intervals.source is val'),
        (['intervals.source=cv', 'intervals.holdout=0.5'], 'intervals.holdout=0.5 is set but intervals.source is cv'),
    ],
)
def test_a_setting_of_the_other_source_is_refused(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config('etth1', overrides)


def test_intervals_off_fits_on_every_validation_window(store):
    from tsforge.prepare import prepare
    from tsforge.train import fit_evaluate

    cfg = load_config('etth1', ['model=naive', 'input_length=48', 'horizon=12', 'intervals.levels=[]'])
    ev = fit_evaluate(cfg, prepare(cfg))
    assert ev.calibration is None and not any(k.startswith('test_80') for k in ev.metrics)


def _history(prep, o, shift=0.0):
    h = prep.frame.iloc[o - 96 : o][['date', 'OT']].copy()
    h['date'] = h['date'].astype(str)
    h['OT'] = h['OT'] + shift
    return h


def test_bundle_round_trip_and_pyfunc_levels(trained_iv):
    from tsforge.bundle import load_model
    from tsforge.request import RequestError

    m = load_model(trained_iv.model_uri)
    assert m.levels == [80.0, 95.0]
    assert np.array_equal(m.calibration.lower, trained_iv.evaluation.calibration.lower)
    prep = trained_iv.prep
    o = int(prep.origins('test')[100])
    fc = m.forecast(_history(prep, o), levels=[80, 95])
    assert list(fc.columns) == ['date', 'OT', 'OT_lo_80', 'OT_hi_80', 'OT_lo_95', 'OT_hi_95']
    exp = trained_iv.predictions[trained_iv.predictions.origin == prep.frame.date.iloc[o - 1]].sort_values('step')
    assert np.abs(fc.OT_lo_80.to_numpy() - exp.lo_80.to_numpy()).max() < 1e-9
    assert np.abs(fc.OT_hi_95.to_numpy() - exp.hi_95.to_numpy()).max() < 1e-9
    pyf = mlflow.pyfunc.load_model(trained_iv.model_uri)
    out = pyf.predict(_history(prep, o), params={'horizon': 6, 'levels': [95.0]})
    assert list(out.columns) == ['date', 'OT', 'OT_lo_95', 'OT_hi_95'] and len(out) == 6
    assert np.allclose(out.OT_lo_95.to_numpy(), exp.lo_95.to_numpy()[:6])
    with pytest.raises(RequestError, match='available: 80, 95'):
        m.forecast(_history(prep, o), levels=[90])
    assert m.forecast(_history(prep, o)).attrs['warnings'] == []
    assert m.forecast(_history(prep, o, shift=25.0)).attrs['warnings']


@pytest.fixture(scope='module')
def iv_server(trained_iv):
    port = free_port()
    env = {**os.environ, 'TSFORGE_MODEL': f'models:/{NAME}@champion'}
    proc = subprocess.Popen(uvicorn_cmd(port), env=env, cwd=ROOT)
    url = f'http://127.0.0.1:{port}'
    try:
        wait_http(f'{url}/ready', proc)
        yield url
    finally:
        stop(proc)


def test_http_bands_parity_and_errors(iv_server, trained_iv):
    prep, pred = trained_iv.prep, trained_iv.predictions
    meta = requests.get(f'{iv_server}/metadata').json()
    assert meta['levels'] == [80.0, 95.0] and meta['interval_method'] == 'conformal'
    assert meta['interval_scale'] == 'none'
    test = prep.origins('test')
    for o in test[np.linspace(0, len(test) - 1, 5).astype(int)]:
        hist = _history(prep, int(o)).to_dict(orient='records')
        r = requests.post(f'{iv_server}/predict', json={'history': hist, 'levels': [80, 95]})
        assert r.status_code == 200, r.text
        fc = pd.DataFrame(r.json()['forecast'])
        exp = pred[pred.origin == prep.frame.date.iloc[int(o) - 1]].sort_values('step')
        for lv in ('80', '95'):
            assert np.abs(fc[f'OT_lo_{lv}'].to_numpy() - exp[f'lo_{lv}'].to_numpy()).max() < 1e-6
            assert np.abs(fc[f'OT_hi_{lv}'].to_numpy() - exp[f'hi_{lv}'].to_numpy()).max() < 1e-6
    hist = _history(prep, int(test[0])).to_dict(orient='records')
    plain = requests.post(f'{iv_server}/predict', json={'history': hist}).json()
    assert set(plain['forecast'][0]) == {'date', 'OT'}
    r = requests.post(f'{iv_server}/predict', json={'history': hist, 'levels': [90]})
    assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'levels'
    assert 'available: 80, 95' in r.json()['detail']
    r = requests.post(f'{iv_server}/predict', json={'history': hist, 'levels': 'wide'})
    assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'levels'
    r = requests.post(f'{iv_server}/predict', json={'history': hist, 'levels': [80, 80.0]})
    assert r.status_code == 422 and "levels: listed twice: ['80']; ask for each level once" in r.json()['detail']


def test_http_drift_warnings_and_metrics(iv_server, trained_iv):
    import re

    def warned():
        m = re.search(
            r'tsforge_drift_warnings_total\{column="OT",statistic="z"\} (\S+)',
            requests.get(f'{iv_server}/metrics').text,
        )
        return float(m.group(1)) if m else 0.0

    prep = trained_iv.prep
    o = int(prep.origins('test')[500])
    before = warned()
    ok = requests.post(f'{iv_server}/predict', json={'history': _history(prep, o).to_dict(orient='records')})
    assert ok.status_code == 200 and 'warnings' not in ok.json()
    shifted = _history(prep, o, shift=25.0).to_dict(orient='records')
    r = requests.post(f'{iv_server}/predict', json={'history': shifted})
    assert r.status_code == 200 and any('OT z' in w for w in r.json()['warnings']), r.json().get('warnings')
    text = requests.get(f'{iv_server}/metrics').text
    assert 'tsforge_drift_score{column="OT",statistic="z"}' in text
    assert warned() == before + 1


def test_normalised_bands_follow_the_input(store):
    """`intervals.scale: input`: the train job calibrates ratios error / input std, the bundle ships the scale and its
    floor, and every path (bundle, batched requests, pyfunc, the cv job's folds) bands each window by its own input:
    the same history with its swings doubled gets bands twice as wide."""
    from tsforge.bundle import load_model
    from tsforge.cv import backtest
    from tsforge.train import train

    res = train(load_config('etth1', [*OVERRIDES[:3], 'registry.model_name=tsforge-iv-scale', 'intervals.scale=input']))
    cal, m = res.evaluation.calibration, res.metrics
    assert cal.scale == 'input' and cal.scale_floor.shape == (1,) and 0.8 < m['test_95_coverage'] <= 1, m
    b = load_model(res.model_uri)
    assert b.calibration.scale == 'input' and np.allclose(b.calibration.scale_floor, cal.scale_floor)
    prep, pred = res.prep, res.predictions
    o = int(prep.origins('test')[100])
    h = _history(prep, o)
    fc = b.forecast(h, levels=[80, 95])
    exp = pred[pred.origin == prep.frame.date.iloc[o - 1]].sort_values('step')
    assert np.abs(fc.OT_lo_80.to_numpy() - exp.lo_80.to_numpy()).max() < 1e-9
    assert np.abs(fc.OT_hi_95.to_numpy() - exp.hi_95.to_numpy()).max() < 1e-9
    wide = h.assign(OT=h.OT.mean() + 2 * (h.OT - h.OT.mean()))
    fw = b.forecast(wide, levels=[80])
    assert np.allclose((fw.OT_hi_80 - fw.OT_lo_80).to_numpy(), 2 * (fc.OT_hi_80 - fc.OT_lo_80).to_numpy())
    # two requests in one predict call (the server's batches) band each by its own input
    from tsforge.request import frame_tail

    tails = [frame_tail(b.state, x) for x in (h, wide)]
    both = b.forecast_tails(tails, [None, None], [[80], [80]])
    assert np.allclose(both[0][2][0][:, 0, 0], fc.OT_lo_80) and np.allclose(both[1][2][1][:, 0, 0], fw.OT_hi_80)
    pyf = mlflow.pyfunc.load_model(res.model_uri).predict(h, params={'levels': [95.0]})
    assert np.allclose(pyf.OT_hi_95.to_numpy(), fc.OT_hi_95.to_numpy())
    # online adaptation moves the levels of the normalised table; its bands still need each window's scale
    from tsforge.adaptive import Adaptive

    ad = Adaptive(b.calibration, 'aci', gamma=0.05)
    ad.feedback([''], [0], np.zeros((1, 1)))
    assert ad.calibration().scale == 'input' and ad.calibration().scale_floor is b.calibration.scale_floor
    cfg = load_config(
        'etth1',
        [*OVERRIDES[:3], 'cv.n_windows=2', 'cv.executor=serial', 'intervals.scale=input', 'intervals.levels=[80]'],
    )
    folds = backtest(cfg).folds
    assert (folds['80_coverage'] > 0.5).all(), folds


def test_cv_logs_per_fold_coverage(store):
    from tsforge.cv import backtest

    cfg = load_config(
        'etth1', ['model=linear', 'input_length=96', 'horizon=24', 'cv.n_windows=2', 'cv.executor=serial']
    )
    res = backtest(cfg)
    assert {'80_coverage', '95_coverage'} <= set(res.folds.columns)
    assert ((res.folds['95_coverage'] >= res.folds['80_coverage']) & (res.folds['80_coverage'] > 0.5)).all()
    assert 0.5 < res.metrics['cv_80_coverage_mean'] <= 1
    child = mlflow.MlflowClient().get_run(res.child_run_ids[0])
    assert child.data.metrics['80_coverage'] == res.folds['80_coverage'].iloc[0]


def test_tune_can_minimise_msis(store):
    from tsforge.tune import tune

    with pytest.raises(ConfigError, match='tune.metric=msis scores intervals'):
        load_config('etth1', ['tune.metric=msis', 'intervals.levels=[]'])
    cfg = load_config(
        'etth1',
        [
            'model=linear',
            'input_length=96',
            'horizon=24',
            'cv.n_windows=2',
            'tune.metric=msis',
            'tune.n_trials=2',
            'tune.executor=serial',
            'tune.retrain=false',
            '+tune.space.model_params.alpha=[0.1, 10.0]',
            'tune.study_name=iv-msis',
        ],
    )
    res = tune(cfg)
    vals = [t.value for t in res.study.trials if t.value is not None]
    assert len(vals) == 2 and all(0 < v < 100 for v in vals)
    assert res.study.user_attrs['metric'] == 'cv_msis'


def test_tune_on_msis_where_it_is_undefined_says_so(store, tmp_path):
    """A target that repeats itself exactly every 24 hours: MSIS's scale is 0, so the metric is undefined. Every trial
    fails with the reason (before, Optuna failed the trials on their nan value and the job blamed a lost heartbeat)."""
    from tsforge.tune import tune

    df = pd.read_csv(Path(os.environ['TSFORGE_DATA_DIR']) / 'ETTh1.csv')
    df['OT'] = np.tile(np.sin(np.arange(24) / 24 * 2 * np.pi), len(df) // 24 + 1)[: len(df)]
    df.to_csv(tmp_path / 'periodic.csv', index=False)
    cfg = load_config(
        'etth1',
        [
            'model=naive',
            'input_length=96',
            'horizon=24',
            'cv.n_windows=2',
            'data.dataset=null',
            f'data.path={tmp_path / "periodic.csv"}',
            'tune.metric=msis',
            'tune.n_trials=2',
            'tune.executor=serial',
            'tune.retrain=false',
            '+tune.space.input_length=[48, 96]',
            'tune.study_name=iv-msis-undefined',
        ],
    )
    with pytest.raises(RuntimeError, match='no trial .* completed') as e:
        tune(cfg)
    assert 'tune.metric=msis is nan on fold 0' in str(e.value) and 'choose tune.metric=winkler' in str(e.value)


# ---------------------------------------------------------------- intervals.source: cv


def test_source_cv_end_to_end_never_reads_test(store):
    """The train job with `intervals.source: cv`: refits on earlier cut-offs calibrate (every validation window once),
    the bundle and the run record the source and the counts, and the calibration is the same when every test row is
    NaN (it never reads one)."""
    import dataclasses

    from tsforge.bundle import load_model
    from tsforge.train import cv_calibration, train

    name = 'tsforge-intervals-cv-test'
    cfg = load_config('etth1', [*OVERRIDES, f'registry.model_name={name}', 'intervals.source=cv', 'intervals.folds=2'])
    res = train(cfg)
    ev, prep, m = res.evaluation, res.prep, res.metrics
    n_val = len(prep.origins('val'))
    assert ev.calibration.source == 'cv' and ev.calibration.folds == 2 and ev.calibration.n == n_val
    assert m['calibration_windows'] == n_val and m['calibration_folds'] == 2
    assert 0.75 < m['test_80_coverage'] < 0.98 and 0.9 < m['test_95_coverage'] <= 1, m
    run = mlflow.MlflowClient().get_run(res.run_id)
    assert run.data.params['intervals.source'] == 'cv' and run.data.params['intervals.folds'] == '2'
    assert run.data.metrics['calibration_folds'] == 2 and run.data.metrics['calibration_windows'] == n_val
    d = load_model(res.model_uri).calibration.to_dict()
    assert (d['source'], d['folds'], d['n'], d['method']) == ('cv', 2, n_val, 'conformal')
    # the test rows hidden: the same pooled errors
    scaled = prep.scaled.copy()
    scaled[prep.borders.val_end :] = np.nan
    p1, y1, _, _ = cv_calibration(cfg, prep)
    p2, y2, _, _ = cv_calibration(cfg, dataclasses.replace(prep, scaled=scaled))
    assert np.isfinite(p2).all() and np.isfinite(y2).all() and np.array_equal(p1, p2) and np.array_equal(y1, y2)
    with pytest.raises(ConfigError, match='intervals.folds=5000: the validation part holds'):
        cv_calibration(load_config('etth1', [*OVERRIDES, 'intervals.source=cv', 'intervals.folds=5000']), prep)


# ---------------------------------------------------------------- intervals.method: cqr


def test_cqr_config_is_refused_where_it_cannot_work():
    with pytest.raises(ConfigError, match="intervals.method: cqr .*model 'linear' forecasts none"):
        load_config('etth1', ['model=linear', 'intervals.method=cqr'])
    with pytest.raises(ConfigError, match=r'intervals.levels: .*level 95 needs the quantiles 0.025 and 0.975'):
        load_config('etth1', ['model=tft', 'intervals.method=cqr'])  # default levels 80, 95; quantiles 0.1 0.5 0.9
    ok = load_config('etth1', ['model=tft', 'intervals.method=cqr', 'intervals.levels=[80]'])
    assert ok.intervals.method == 'cqr'
    ok = load_config(
        'etth1', ['model=tft', 'intervals.method=cqr', '+model_params.quantiles=[0.025,0.1,0.5,0.9,0.975]']
    )
    assert cqr_pairs(ok.model_params['quantiles'], ok.intervals.levels) == [[2, 4], [1, 5]]


def _daily(n: int = 420, seed: int = 0) -> pd.DataFrame:
    "A weekly pattern whose noise doubles on weekends (heteroscedastic: quantile bands should follow it)."
    rng = np.random.default_rng(seed)
    t = pd.date_range('2020-01-01', periods=n, freq='D')
    wk = (t.day_of_week >= 5).astype(float)
    y = 10 + 2 * np.sin(2 * np.pi * np.arange(n) / 7) + rng.normal(size=n) * (0.5 + wk)
    return pd.DataFrame({'date': t, 'y': y})


def _cqr_overrides(csv, name) -> list[str]:
    "A tiny tft on `_daily` with cqr bands at 80% from two refits."
    return [
        'data.dataset=null',
        f'data.path={csv}',
        'data.target=[y]',
        'input_length=28',
        'horizon=7',
        'model=tft',
        'split.kind=ratio',
        'split.train=0.6',
        'split.val=0.2',
        'intervals.levels=[80]',
        'intervals.method=cqr',
        'intervals.source=cv',
        'intervals.folds=2',
        f'registry.model_name={name}',
        'registry.promote=always',
        '+model_params.epochs=3',
        '+model_params.progress=false',
        '+model_params.d_model=8',
    ]


def test_cqr_tft_bands_train_job_and_bundle(store, tmp_path):
    """tft with `method: cqr` (and `source: cv`) through the train job: the bands are the model's q10 / q90 moved by
    the conformal offset, cover sanely, and the bundle serves the same bands."""
    from tsforge.bundle import load_model
    from tsforge.train import train

    csv = tmp_path / 'daily.csv'
    _daily().to_csv(csv, index=False)
    res = train(load_config('etth1', _cqr_overrides(csv, 'tsforge-intervals-cqr-test')))
    ev, prep = res.evaluation, res.prep
    cal = ev.calibration
    assert cal.method == 'cqr' and cal.quantile_index == [[1, 3]] and cal.source == 'cv'
    q = ev.model.predict_quantiles(prep.windows('test'))
    lo, hi = ev.test_bands
    assert np.allclose(lo[:, :, 0] + cal.lower[None, :, 0], q[..., 1])
    assert np.allclose(hi[:, :, 0] - cal.upper[None, :, 0], q[..., 3])
    inside = (lo[:, :, 0] <= q[..., 1]) & (hi[:, :, 0] >= q[..., 3])  # a positive offset: the band holds q10..q90
    assert inside.all() == bool((cal.lower > 0).all())
    assert 0.6 < res.metrics['test_80_coverage'] <= 1, res.metrics
    m = load_model(res.model_uri)
    assert m.levels == [80.0] and m.calibration.method == 'cqr'
    org = int(prep.origins('test')[5])
    h = prep.frame.iloc[org - 28 : org][['date', 'y']].copy()
    h['date'] = h['date'].astype(str)
    fc = m.forecast(h, levels=[80])
    exp = res.predictions[res.predictions.origin == prep.frame.date.iloc[org - 1]].sort_values('step')
    assert np.abs(fc.y_lo_80.to_numpy() - exp.lo_80.to_numpy()).max() < 1e-5
    assert np.abs(fc.y_hi_80.to_numpy() - exp.hi_80.to_numpy()).max() < 1e-5
    assert np.abs(fc.y.to_numpy() - exp.y_pred.to_numpy()).max() < 1e-5
    assert list(m.forecast(h).columns) == ['date', 'y']  # no levels asked: the point forecast only


def test_cqr_in_the_cv_job_folds(tmp_path):
    "The cv job calibrates each fold's tft with cqr on the fold's held-out windows and logs its coverage."
    from tsforge.cv import run_folds

    csv = tmp_path / 'daily.csv'
    _daily().to_csv(csv, index=False)
    o = [x for x in _cqr_overrides(csv, 'unused') if not x.startswith(('intervals.source', 'intervals.folds'))]
    rs = run_folds(load_config('etth1', [*o, 'cv.n_windows=2', 'cv.horizon=21', 'cv.executor=serial']))
    assert len(rs) == 2 and all(0.3 < r.metrics['80_coverage'] <= 1 for r in rs), [r.metrics for r in rs]


def test_source_cv_long_format_per_series_borders(tmp_path):
    """Long format, series of different lengths (each split by its own length): the refits read no series' test rows
    and every series' validation windows are scored once."""
    import dataclasses

    from tsforge.data import synthetic_panel
    from tsforge.prepare import prepare
    from tsforge.train import cv_calibration, fit_evaluate

    p = synthetic_panel(3, 400, seed=2)
    p = p[~((p.unique_id == 's2') & (p.ds > p.ds.iloc[299]))]  # s2: 300 rows
    p.to_parquet(tmp_path / 'panel.parquet')
    (tmp_path / 'panel.yaml').write_text(
        f'defaults: [base, _self_]\nname: panel\ndata: {{path: {tmp_path}/panel.parquet, format: long, '
        'id_col: unique_id, time_col: ds, target: [y]}\ninput_length: 48\nhorizon: 12\nmodel: linear\n'
        'intervals: {source: cv, folds: 2, levels: [80]}\n'
    )
    cfg = load_config(str(tmp_path / 'panel.yaml'))
    prep = prepare(cfg)
    ev = fit_evaluate(cfg, prep)
    assert ev.calibration.n == len(prep.origins('val')) and ev.calibration.source == 'cv'
    assert 0.6 < ev.metrics['test_80_coverage'] <= 1, ev.metrics
    scaled, pn = prep.scaled.copy(), prep.panel
    for s, v, n in zip(pn.start, pn.val_end, pn.length):
        scaled[s + v : s + n] = np.nan  # every series' test rows
    a, b = cv_calibration(cfg, prep), cv_calibration(cfg, dataclasses.replace(prep, scaled=scaled))
    assert np.isfinite(b[0]).all() and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[3] is None  # scale none: no input scales computed
    # normalised bands on the panel: each series' windows banded by their own input, the bundle's as the run's
    from tsforge.bundle import TsforgeModel
    from tsforge.train import predictions_frame

    cfg_n = load_config(str(tmp_path / 'panel.yaml'), ['intervals.scale=input'])
    a, b = cv_calibration(cfg_n, prep), cv_calibration(cfg_n, dataclasses.replace(prep, scaled=scaled))
    assert np.array_equal(a[3], b[3]) and a[3].shape == (len(a[1]), 1)  # the refits' input scales: no test row read
    ev_n = fit_evaluate(cfg_n, prep)
    assert ev_n.calibration.scale == 'input' and 0.6 < ev_n.metrics['test_80_coverage'] <= 1, ev_n.metrics
    pf = predictions_frame(prep, ev_n)
    first = pf[pf.origin == pf.groupby('unique_id').origin.transform('min')]  # each series' first test origin
    f = prep.frame.merge(first.groupby('unique_id').origin.first().rename('cut'), on='unique_id')
    hist = f[f.ds <= f.cut].groupby('unique_id').tail(48)[prep.frame.columns]
    fc = TsforgeModel(ev_n.model, None, ev_n.calibration).forecast(hist, levels=[80])
    compared = 0
    for sid, g in fc.groupby('unique_id'):
        e = first[first.unique_id == sid].sort_values('step')
        assert np.abs(g.y_lo_80.to_numpy() - e.lo_80.to_numpy()).max() < 1e-6, sid
        compared += 1
    assert compared == 3
