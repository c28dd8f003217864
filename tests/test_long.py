"""Long format (one row per series and timestamp, Nixtla's unique_id / ds / y with any names): loading and its errors,
per-series scaling and windows, the train job (`train`, what nbs/train.ipynb calls), the bundle's long forecast, and
the cv job."""

import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import serving
from tsforge import bundle
from tsforge.cv import run_folds
from tsforge.config import ConfigError, load_config
from tsforge.data import DataError, load_frame, synthetic_panel
from tsforge.train import fit_evaluate, train
from tsforge.prepare import prepare
from tsforge.request import RequestError

L, H = 48, 12


@pytest.fixture(scope='module')
def panel(tmp_path_factory):
    "12 series of different lengths and starts, one too short for a window, rows shuffled; columns item / ts / sales."
    df = synthetic_panel(12, 400, seed=3).rename(columns={'unique_id': 'item', 'ds': 'ts', 'y': 'sales'})
    pos = df.groupby('item').cumcount()
    df = df[
        ~(
            ((df.item == 's2') & (pos < 150))  # starts later
            | ((df.item == 's4') & (pos >= 300))  # ends earlier
            | ((df.item == 's7') & (pos < 340))
        )
    ]  # 60 rows: too short
    d = tmp_path_factory.mktemp('panel')
    df.sample(frac=1, random_state=0).to_csv(d / 'panel.csv', index=False)
    (d / 'panel.yaml').write_text(f"""defaults: [base, _self_]
name: panel
data: {{path: {d / 'panel.csv'}, format: long, id_col: item, time_col: ts, target: [sales]}}
input_length: {L}
horizon: {H}
cv: {{n_windows: 2, executor: serial}}
""")
    return d


def cfg(panel, *overrides):
    return load_config(str(panel / 'panel.yaml'), list(overrides))


def test_per_series_scaling_and_windows(panel):
    prep = prepare(cfg(panel))
    assert prep.report.skipped == ['s7'] and prep.report.series == 11
    assert any('s7' in line and 'too short' in line for line in prep.report.issues)
    p, st, f = prep.panel, prep.state, prep.frame
    raw = pd.read_csv(panel / 'panel.csv', parse_dates=['ts'])
    for k, sid in enumerate(p.ids):  # every series' own train rows: its first 70%
        rows = raw[raw.item == sid].sort_values('ts').sales.to_numpy()
        tr = rows[: int(len(rows) * 0.7)]
        assert np.isclose(st.series_mean[k][0], tr.mean()) and np.isclose(st.series_std[k][0], tr.std(ddof=0))
    codes = p.row_series()
    for part in ('train', 'val', 'test'):
        w = prep.windows(part)
        assert len(w) > 0
        # windows never cross series: every input and target row belongs to the window's series
        assert (codes[w.origins - L] == w.series).all() and (codes[w.origins + H - 1] == w.series).all()
    w = prep.windows('test')
    k = 3
    sid, o = p.ids[w.series[k]], w.origins[k]
    assert f.item.iloc[o] == sid and np.allclose(
        st.inverse_transform(w.Y[k], series=w.series[k : k + 1])[:, 0], f.sales.to_numpy()[o : o + H]
    )


@pytest.mark.parametrize(
    'case,msg',
    [
        ('dup', "series 's1': 2 duplicate (item, ts) pair(s)"),
        ('freq', "series 's3': "),
        ('noid', "data.id_col 'item' is not a column"),
    ],
)
def test_bad_input_one_error_naming_series_and_rows(panel, tmp_path, case, msg):
    df = pd.read_csv(panel / 'panel.csv')
    if case == 'dup':
        df = pd.concat([df, df[df.item == 's1'].head(2)])
    if case == 'freq':  # s3 every 2 hours
        s3 = df[df.item == 's3'].copy()
        s3['ts'] = pd.to_datetime(s3.ts).sort_values().iloc[0] + pd.to_timedelta(np.arange(len(s3)) * 2, unit='h')
        df = pd.concat([df[df.item != 's3'], s3])
    if case == 'noid':
        df = df.drop(columns='item')
    df.to_csv(tmp_path / 'bad.csv', index=False)
    c = cfg(panel, f'data.path={tmp_path / "bad.csv"}')
    with pytest.raises(DataError) as e:
        load_frame(c.data)
    assert msg in str(e.value) and 'rows' in str(e.value) or case == 'noid', str(e.value)
    if case == 'freq':
        assert 'not on the h grid' in str(e.value) and 'median step is 0 days 02:00:00' in str(e.value)


def test_missing_id_col_in_config(panel):
    with pytest.raises(ConfigError, match='data.id_col'):
        cfg(panel, 'data.id_col=null')


def test_fill_repairs_per_series(panel, tmp_path):
    df = pd.read_csv(panel / 'panel.csv')
    df = pd.concat([df, df[df.item == 's1'].head(1)])  # a duplicate in s1
    gap = df[(df.item == 's5')].sort_values('ts').ts.iloc[100:103]
    df = df[~((df.item == 's5') & df.ts.isin(gap))]  # 3 missing hours in s5
    df.loc[df[df.item == 's6'].index[:2], 'sales'] = np.nan  # 2 NaN in s6
    df.to_csv(tmp_path / 'holes.csv', index=False)
    with pytest.raises(DataError, match='on_issue=fill'):
        load_frame(cfg(panel, f'data.path={tmp_path / "holes.csv"}').data)
    frame, rep = load_frame(cfg(panel, f'data.path={tmp_path / "holes.csv"}', 'data.on_issue=fill').data)
    text = ' | '.join(rep.issues)
    assert (
        "series 's1': 1 duplicate" in text
        and "series 's5': 3 missing" in text
        and "series 's6': 2 row(s) with empty or NaN" in text
    )
    s5 = frame[frame.item == 's5']
    assert rep.filled and not frame.sales.isna().any() and (s5.ts.diff().dropna() == pd.Timedelta('1h')).all()


def test_models_share_weights_across_series(panel):
    for model, extra in [
        ('linear', []),
        ('lightgbm', ['+model_params.n_estimators=20', '+model_params.num_threads=1']),
        ('dlinear', ['+model_params.epochs=1', '+model_params.progress=false']),
    ]:
        c = cfg(panel, f'model={model}', *extra)
        ev = fit_evaluate(c)
        naive = fit_evaluate(cfg(panel, 'model=naive')).metrics['test_mse']
        assert ev.metrics['test_mse'] < naive, model
    assert len(ev.model.module.seasonal_linear.weight) == 1  # one set of weights for every series


@pytest.fixture(scope='module')
def trained_long(store, panel):
    "The panel experiment trained by the train job's library call (the papermill job itself: test_train_job.py)."
    res = train(cfg(panel, 'model=linear'))
    assert res.version and res.promoted
    return bundle.resolve('models:/tsforge-panel@champion')


def test_train_job_predictions_and_bundle_parity(trained_long, panel):
    run = MlflowClient().get_run(trained_long['run_id'])
    assert run.info.status == 'FINISHED'
    pred = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path='predictions.parquet')
    )
    assert list(pred.columns) == ['item', 'origin', 'target_time', 'step', 'series', 'y_true', 'y_pred'] + [
        f'{s}_{lv}' for lv in (80, 95) for s in ('lo', 'hi')
    ]  # the conformal bands (intervals.levels)
    assert pred.item.nunique() == 11 and 's7' not in set(pred.item)
    assert np.isclose(((pred.y_true - pred.y_pred) ** 2).mean(), run.data.metrics['test_mse_orig'])
    m = bundle.load_model('models:/tsforge-panel@champion')
    prep = prepare(cfg(panel))
    f = prep.frame
    hist, want = [], []
    for sid in ['s2', 's0', 's9']:  # three series at once, each at one of its test origins
        rows = f[f.item == sid]
        origin = rows.ts.iloc[-30]
        hist.append(rows[rows.ts <= origin].tail(L + 5))
        want.append(pred[(pred.item == sid) & (pred.origin == origin)].sort_values('step'))
    h = pd.concat(hist)
    h['ts'], h['item'] = h.ts.astype(str), h.item.astype(str)
    fc = m.forecast(h)
    assert list(fc.columns) == ['item', 'ts', 'sales'] and list(fc.item.unique()) == ['s2', 's0', 's9']
    for sid, w in zip(['s2', 's0', 's9'], want):
        got = fc[fc.item == sid]
        assert np.abs(got.sales.to_numpy() - w.y_pred.to_numpy()).max() < 1e-6
        assert (pd.to_datetime(got.ts).to_numpy() == w.target_time.to_numpy()).all()
    pyfunc = mlflow.pyfunc.load_model('models:/tsforge-panel@champion')  # the pyfunc entry point, horizon param
    assert len(pyfunc.predict(h, params={'horizon': 4})) == 12
    with pytest.raises(RequestError, match='unknown series'):
        m.forecast(h.assign(item='nope'))
    with pytest.raises(RequestError, match=r'history\.item'):
        m.forecast(h.drop(columns='item'))
    with pytest.raises(RequestError, match="series 's0'"):
        m.forecast(h[~((h.item == 's0') & (h.index % 7 == 0))])


def test_cv_on_long_data(panel, ray_local):
    c = cfg(panel, 'cv.n_windows=2')
    rs = run_folds(c)
    assert len(rs) == 2 and all(r.metrics['windows'] == 11 for r in rs)
    # refit_every=2: fold 1 reuses fold 0's per-series scalers and model
    rs2 = run_folds(cfg(panel, 'cv.n_windows=2', 'cv.refit_every=2'))
    assert rs2[1].fit_fold == 0 and rs2[1].state.series_mean == rs2[0].state.series_mean
    assert rs2[0].metrics == rs[0].metrics
    # local processes give the same numbers as serial
    rs3 = run_folds(cfg(panel, 'cv.n_windows=2', 'cv.executor=local'))
    assert [r.metrics for r in rs3] == [r.metrics for r in rs]
    # Ray tasks (the frame goes to the object store once) give the same numbers
    rs4 = run_folds(cfg(panel, 'cv.n_windows=2', 'cv.executor=ray'))
    assert [r.metrics for r in rs4] == [r.metrics for r in rs] and all(r.worker_pid != os.getpid() for r in rs4)


def test_http_long_format_parity(trained_long, panel):
    """The app serving the long-format model: one request with several series, each forecast equals the run's
    predictions."""
    run_id = trained_long['run_id']
    pred = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path='predictions.parquet'))
    with serving('models:/tsforge-panel@champion') as http:
        meta = http.get('/metadata').json()
        assert (
            meta['required_columns'] == ['item', 'ts', 'sales'] and meta['id_column'] == 'item' and meta['series'] == 11
        )
        f = prepare(cfg(panel)).frame
        recs, want = [], {}
        for sid in ['s4', 's10', 's0']:
            rows = f[f.item == sid]
            origin = rows.ts.iloc[-20]
            h = rows[rows.ts <= origin].tail(L + 3)
            recs += [{'item': sid, 'ts': str(t), 'sales': float(v)} for t, v in zip(h.ts, h.sales)]
            want[sid] = pred[(pred.item == sid) & (pred.origin == origin)].sort_values('step')
        r = http.post('/predict', json={'history': recs})
        assert r.status_code == 200, r.text
        fc = pd.DataFrame(r.json()['forecast'])
        assert list(fc.columns) == ['item', 'ts', 'sales'] and list(fc.item.unique()) == ['s4', 's10', 's0']
        for sid, w in want.items():
            got = fc[fc.item == sid]
            assert len(got) == H and np.abs(got.sales.to_numpy() - w.y_pred.to_numpy()).max() < 1e-6
            assert (pd.to_datetime(got.ts).to_numpy() == w.target_time.to_numpy()).all()
        r = http.post('/predict', json={'history': recs, 'horizon': 3})
        assert r.status_code == 200 and len(r.json()['forecast']) == 9
        bad = [{**x, 'item': 'zzz'} if i == 0 else x for i, x in enumerate(recs)]
        r = http.post('/predict', json={'history': bad})
        assert r.status_code == 422 and 'unknown series' in r.text
        r = http.post('/predict', json={'history': [{k: v for k, v in x.items() if k != 'item'} for x in recs]})
        assert r.status_code == 422 and r.json()['errors'][0]['field'] == 'history.item'
        gap = recs[: L + 13] + recs[L + 14 :]  # s10 loses one of its last L records (request row L + 13)
        r = http.post('/predict', json={'history': gap})
        assert r.status_code == 422 and "series 's10'" in r.text, r.text
        assert (
            r.json()['errors'][0]['field'] == f'history[{L + 13}].ts'
        )  # the request's own row (the one after the gap)


def test_tracked_cv_job_on_long_data(store, panel):
    "The tracked cv job (`backtest`, what nbs/cv.ipynb calls) on long data: fold runs, predictions with the series id."
    from tsforge.cv import backtest

    res = backtest(cfg(panel, 'cv.n_windows=2'))
    run = MlflowClient().get_run(res.run_id)
    assert run.info.status == 'FINISHED' and run.data.metrics['cv_folds'] == 2 and len(res.child_run_ids) == 2
    assert list(res.predictions.columns[:2]) == ['fold', 'item'] and res.predictions.item.nunique() == 11
    assert res.folds.windows.tolist() == [11, 11]
    # fold borders count rows of the longest series; its timestamps name them
    longest = prepare(cfg(panel)).frame.groupby('item', observed=True).size().max()
    assert res.folds.test_end.iloc[-1] == longest
    pred = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=res.run_id, artifact_path='predictions.parquet'))
    assert np.isclose(((pred.y_true - pred.y_pred) ** 2).mean(), np.mean(res.folds.mse_orig))
