"""The cv job: the papermill job and what it logs, fold borders, no leakage, refits, executors (serial, local, Ray),
failures."""

import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import artifacts, children, papermill, parent_runs
from tsforge.store import configure
from tsforge.cv import backtest, cv_folds, fit_fold, run_folds, score_fold
from tsforge.config import ConfigError, load_config
from tsforge.prepare import prepare

SMALL = ['model=linear', 'input_length=96', 'horizon=24', 'cv.n_windows=3']


@pytest.fixture(scope='module')
def prep2():
    return prepare(load_config('etth2'))


@pytest.fixture(scope='module')
def cv_job(store, tmp_path_factory):
    "The cv job through papermill on a small etth2 config (default executor: local processes)."
    out = tmp_path_factory.mktemp('jobs') / 'cv-etth2.ipynb'
    r = papermill('cv.ipynb', out, 'etth2', SMALL)
    assert r.returncode == 0, r.stderr[-3000:]
    configure()
    run = parent_runs('cv')[0]
    assert run.data.params['cv.n_windows'] == '3'
    return run


def test_cv_job_parent_children_and_summary(cv_job):
    run = cv_job
    assert run.info.status == 'FINISHED' and run.data.tags['tsforge.job'] == 'cv'
    assert run.data.params['cv.executor'] == 'local' and run.data.params['horizon'] == '24'
    kids = children(run.info.run_id)
    assert len(kids) == 3 and all(k.info.status == 'FINISHED' for k in kids)
    assert [k.info.run_name for k in kids] == ['fold-0', 'fold-1', 'fold-2']
    for k in kids:
        assert {'mse', 'mae', 'mse_orig', 'mae_orig', 'windows'} <= set(k.data.metrics), k.data.metrics
        assert k.data.metrics['windows'] == 1
    ends = [
        (
            int(k.data.params['fold.train_end']),
            int(k.data.params['fold.test_start']),
            int(k.data.params['fold.test_end']),
        )
        for k in kids
    ]
    assert ends == [(14328, 14328, 14352), (14352, 14352, 14376), (14376, 14376, 14400)]
    assert kids[0].data.params['fold.test_start_time'] == '2018-02-18 00:00:00'
    m = run.data.metrics
    for name in ('mse', 'mae', 'mse_orig', 'mae_orig'):
        vals = [k.data.metrics[name] for k in kids]
        assert np.isclose(m[f'cv_{name}_mean'], np.mean(vals), rtol=1e-12, atol=0), name
        assert np.isclose(m[f'cv_{name}_std'], np.std(vals), rtol=1e-12, atol=0), name
    assert m['cv_windows'] == 3 and m['cv_folds'] == 3
    # nothing registered by the cv job
    assert not MlflowClient().search_model_versions(f"run_id = '{run.info.run_id}'")


def test_cv_job_artifacts(cv_job):
    rid = cv_job.info.run_id
    arts = artifacts(rid)
    for a in (
        'folds.csv',
        'fold_errors.png',
        'predictions.parquet',
        'config.yaml',
        'data_report.json',
        'notebook/cv-etth2.ipynb',
    ):
        assert a in arts, (a, arts)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path='folds.csv'))
    kids = children(rid)
    assert table.fold.tolist() == [0, 1, 2] and table.run_id.tolist() == [k.info.run_id for k in kids]
    assert table.test_start.tolist() == [14328, 14352, 14376] and (table.train_start == 0).all()
    assert np.allclose(table.mse, [k.data.metrics['mse'] for k in kids], rtol=1e-12, atol=0)
    with open(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path='fold_errors.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    pred = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path='predictions.parquet'))
    assert len(pred) == 3 * 24 and sorted(pred.fold.unique()) == [0, 1, 2]
    f0 = pred[pred.fold == 0]
    assert np.isclose(((f0.y_true - f0.y_pred) ** 2).mean(), kids[0].data.metrics['mse_orig'])


def test_fold_borders_step_gap_sliding(prep2):
    cfg = load_config(
        'etth2', SMALL + ['cv.step=12', 'cv.gap=5', 'cv.window=sliding', 'cv.train_size=2000', 'cv.executor=serial']
    )
    res = run_folds(cfg, prep2)
    rows = [(r.fold.train_start, r.fold.train_end, r.fold.test_start, r.fold.test_end) for r in res]
    assert rows == [(12347, 14347, 14352, 14376), (12359, 14359, 14364, 14388), (12371, 14371, 14376, 14400)]
    ot = prep2.frame.OT.to_numpy()
    for r in res:
        train = ot[r.fold.train_start : r.fold.train_end]
        assert np.isclose(r.state.mean[0], train.mean(), rtol=1e-12) and np.isclose(
            r.state.std[0], train.std(), rtol=1e-12
        )
        assert r.val_start == r.fold.train_end - 400 and r.origins.tolist() == [r.fold.test_start]
    # expanding with a gap; a longer cv.horizon scores every stride-1 window inside it
    cfg = load_config('etth2', SMALL + ['cv.gap=24', 'cv.horizon=48', 'cv.executor=serial'])
    assert [(f.train_start, f.train_end, f.test_start, f.test_end) for f in cv_folds(cfg, 14400)] == [
        (0, 14232, 14256, 14304),
        (0, 14280, 14304, 14352),
        (0, 14328, 14352, 14400),
    ]
    res = run_folds(cfg, prep2)
    assert [r.metrics['windows'] for r in res] == [25, 25, 25] and res[2].origins[[0, -1]].tolist() == [14352, 14376]


CSV = [  # a ratio split of the CSV at data.path, three serial folds
    'data.dataset=null',
    'split.kind=ratio',
    'input_length=48',
    'horizon=24',
    'cv.n_windows=3',
    'cv.executor=serial',
]


def _series_csv(path, jump_from=None):
    t = pd.date_range('2024-01-01', periods=1500, freq='h')
    x = 10 + np.sin(np.arange(1500) * 2 * np.pi / 24) + np.random.default_rng(0).normal(0, 0.1, 1500)
    if jump_from is not None:
        x[jump_from:] += 1000.0
    pd.DataFrame({'date': t, 'OT': x}).to_csv(path, index=False)
    return x


def test_no_leakage_scaler_sees_training_rows_only(tmp_path):
    "The last fold's scored rows jump by 1000: its scaler and forecast must not notice (they would if fitted on them)."
    over = CSV
    x = _series_csv(tmp_path / 'jump.csv', jump_from=1476)
    _series_csv(tmp_path / 'flat.csv')
    jump = run_folds(load_config('etth2', over + [f'data.path={tmp_path / "jump.csv"}']))
    flat = run_folds(load_config('etth2', over + [f'data.path={tmp_path / "flat.csv"}']))
    last = jump[-1]
    assert (last.fold.train_end, last.fold.test_start, last.fold.test_end) == (1476, 1476, 1500)
    assert np.isclose(last.state.mean[0], x[:1476].mean(), rtol=1e-12) and np.isclose(
        last.state.std[0], x[:1476].std(), rtol=1e-12
    )
    assert last.state.mean[0] < 11 and x[:1500].mean() > 25  # stats over the scored rows would be far off
    assert last.state == flat[-1].state and np.array_equal(last.pred, flat[-1].pred)
    assert last.metrics['mae_orig'] > 900 > 1 > flat[-1].metrics['mae_orig']
    assert [r.metrics for r in jump[:2]] == [r.metrics for r in flat[:2]]


def test_refit_every_reuses_model_and_state(store, prep2):
    cfg = load_config('etth2', SMALL + ['cv.refit_every=2', 'cv.executor=serial'])
    res = run_folds(cfg, prep2)
    assert [r.fit_fold for r in res] == [0, 0, 2] and res[1].fit_seconds == 0 and res[1].state == res[0].state
    assert res[1].state.mean != fit_fold(cfg, prep2.frame, ['OT'], ['OT'], prep2.report.freq, res[1].fold).state.mean
    again = score_fold(
        fit_fold(cfg, prep2.frame, ['OT'], ['OT'], prep2.report.freq, res[0].fold), prep2.frame, res[1].fold
    )
    assert np.array_equal(again.pred, res[1].pred) and again.metrics == res[1].metrics
    # tracked: fold 1's child run says which fit it used
    result = backtest(cfg)
    kids = children(result.run_id)
    assert [k.data.params['fold.fit_fold'] for k in kids] == ['0', '0', '2']
    assert [k.data.metrics['fit_seconds'] == 0 for k in kids] == [False, True, False]
    assert result.folds.fit_fold.tolist() == [0, 0, 2] and np.allclose(
        result.folds.mse, [r.metrics['mse'] for r in res]
    )


def _same(a, b):
    return [r.metrics for r in a] == [r.metrics for r in b] and all(
        np.array_equal(x.pred, y.pred) for x, y in zip(a, b)
    )


@pytest.mark.slow
def test_serial_and_local_executors_identical(prep2):
    serial = run_folds(load_config('etth2', SMALL + ['cv.executor=serial']), prep2)
    local = run_folds(load_config('etth2', SMALL + ['cv.executor=local', 'cv.n_jobs=2']), prep2)
    assert _same(serial, local)
    assert {r.worker_pid for r in serial} == {os.getpid()} and os.getpid() not in {r.worker_pid for r in local}


def test_ray_executor_identical(ray_local, prep2):
    over = SMALL + ['cv.refit_every=2']
    serial = run_folds(load_config('etth2', over + ['cv.executor=serial']), prep2)
    on_ray = run_folds(load_config('etth2', over + ['cv.executor=ray']), prep2)
    assert _same(serial, on_ray) and [r.fit_fold for r in on_ray] == [0, 0, 2]
    assert os.getpid() not in {r.worker_pid for r in on_ray}
    assert ray_local.is_initialized()  # a Ray the job did not start is left running


@pytest.mark.slow
def test_failed_job_bad_data_marks_failed(store, tmp_path):
    df = pd.read_csv(os.path.join(os.environ['TSFORGE_DATA_DIR'], 'ETTh2.csv'))
    df['OT'] = df['OT'].astype(object)
    df.loc[500, 'OT'] = 'broken'
    df.to_csv(tmp_path / 'broken.csv', index=False)
    r = papermill(
        'cv.ipynb',
        tmp_path / 'out.ipynb',
        'etth2',
        SMALL + ['data.dataset=null', f'data.path={tmp_path / "broken.csv"}'],
    )
    assert r.returncode != 0 and 'DataError' in r.stderr
    configure()
    last = parent_runs('cv')[0]
    assert last.info.status == 'FAILED' and last.data.params['data.path'].endswith('broken.csv')


@pytest.mark.slow
@pytest.mark.parametrize('there', ['nothing', 'no Ray head'])
def test_unreachable_ray_address_fails_the_run(store, tmp_path, there):
    """`cv.executor=ray` with a `RAY_ADDRESS` where no Ray head listens, or where something that is no Ray head
    answers: the job stops with one error naming the variable, and its run ends FAILED. Before, `ray.init` was still
    trying after 5 minutes ("Failed to connect to GCS"): Ray tries 20 times, about 40 s each where a port answers."""
    import socket

    with socket.create_server(('127.0.0.1', 0)) as listener:  # answers (the kernel accepts), says nothing
        port = 1 if there == 'nothing' else listener.getsockname()[1]
        env = {'RAY_ADDRESS': f'127.0.0.1:{port}'}
        if there == 'no Ray head':  # one try of Ray's (the job's default: 3) with a 3 s wait for the cluster id
            env.update(RAY_gcs_server_port_wait_time_s='1', RAY_py_gcs_connect_timeout_s='3')
        over = SMALL + ['cv.executor=ray', 'cv.n_jobs=2']
        r = papermill('cv.ipynb', tmp_path / 'out.ipynb', 'etth2', over, env=env, timeout=300)
    said = 'no Ray head answers' if there == 'nothing' else 'Ray could not connect'
    assert r.returncode != 0 and f'ConnectionError: RAY_ADDRESS=127.0.0.1:{port}: {said}' in r.stderr, r.stderr
    configure()
    assert parent_runs('cv')[0].info.status == 'FAILED'


def test_failed_fold_marks_child_and_parent_failed(store):
    "A fold whose model fails: its child run and the parent end FAILED; folds before it stay FINISHED."
    cfg = load_config(
        'etth2', ['model=seasonal_naive', 'input_length=96', 'horizon=24', 'cv.n_windows=3', 'cv.executor=serial']
    )
    cfg = cfg.model_copy(update={'model_params': {'period': 200}})  # past the load-time check: the fit fails
    with pytest.raises(ValueError, match='period=200 must be <= input_length=96'):
        backtest(cfg)
    parent = parent_runs('cv')[0]
    assert parent.info.status == 'FAILED' and parent.data.tags['tsforge.model'] == 'seasonal_naive'
    kids = children(parent.info.run_id)
    assert [(k.info.run_name, k.info.status) for k in kids] == [('fold-0', 'FAILED')]
    assert mlflow.active_run() is None


def test_fold_too_short_marks_failed(store):
    with pytest.raises(ConfigError, match='fold 0 has'):
        backtest(load_config('etth2', SMALL + ['cv.n_windows=600', 'cv.executor=serial']))
    assert parent_runs('cv')[0].info.status == 'FAILED' and mlflow.active_run() is None


def test_blocked_folds_never_read_the_scored_rows(tmp_path):
    """cv.window=blocked: each fold trains on the rows before and after its block. The middle block's rows jump by
    1000: that fold's scaler and model must not notice (the windows whose inputs lie before the block forecast the
    same), while the folds that train on those rows do; the naive forecast's rel_mse is 1 in every fold."""
    over = CSV + ['cv.horizon=300', 'cv.step=300', 'cv.gap=12', 'cv.window=blocked']
    x = _series_csv(tmp_path / 'flat.csv')
    t = pd.date_range('2024-01-01', periods=1500, freq='h')
    y = x.copy()
    y[900:1200] += 1000.0
    pd.DataFrame({'date': t, 'OT': y}).to_csv(tmp_path / 'jump.csv', index=False)
    jump = run_folds(load_config('etth2', over + [f'data.path={tmp_path / "jump.csv"}']))
    flat = run_folds(load_config('etth2', over + [f'data.path={tmp_path / "flat.csv"}']))
    segs = [r.fold.train_segments for r in jump]
    assert segs == [[(0, 588), (912, 1500)], [(0, 888), (1212, 1500)], [(0, 1188)]], segs
    mid = jump[1]
    rows = np.r_[x[:888], x[1212:]]
    assert np.isclose(mid.state.mean[0], rows.mean(), rtol=1e-12) and np.isclose(mid.state.std[0], rows.std())
    assert mid.state == flat[1].state and mid.origins[0] == 900
    assert np.array_equal(mid.pred[0], flat[1].pred[0])  # inputs before the block: the same forecast
    assert mid.val_start == 1500 - 235  # the last 20% of the 1176 training rows, at the end of the later segment
    assert mid.metrics['mae_orig'] > 50 > 1 > flat[1].metrics['mae_orig']  # the jump is scored, not learned
    for k in (0, 2):  # these folds train on the block's rows: they do see the jump
        assert jump[k].state != flat[k].state
    naive = run_folds(load_config('etth2', over + [f'data.path={tmp_path / "flat.csv"}', 'model=naive']))
    assert [round(r.metrics['rel_mse'], 12) for r in naive] == [1.0, 1.0, 1.0]
    assert all(0 < r.metrics['rel_mse'] < 1 for r in flat)  # the ridge beats repeating the last value here


@pytest.mark.parametrize(
    'extra, expected',
    [
        (['cv.window=blocked', 'cv.refit_every=2'], 'cv.refit_every=2'),
        (['cv.window=blocked', 'cv.train_size=500'], 'cv.train_size'),
        (['cv.train_size=500'], 'cv.train_size=500 applies to cv.window=sliding; an expanding fold trains on every'),
    ],
)
def test_bad_blocked_settings_name_the_field(extra, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config('etth2', SMALL + extra)


def test_sliding_train_size_beyond_the_first_fold_is_refused():
    "The early folds would train on fewer rows than cv.train_size, silently: refused, naming the most it can be."
    cfg = load_config('etth2', ['cv.n_windows=3', 'cv.step=96', 'cv.window=sliding', 'cv.train_size=14200'])
    with pytest.raises(ConfigError, match=r'cv.train_size=14200: the first fold has only 14112 rows before it'):
        cv_folds(cfg, 14400)
    assert cv_folds(cfg.model_copy(update={'cv': cfg.cv.model_copy(update={'train_size': 14112})}), 14400)
    with pytest.raises(ConfigError, match=r'fold 0 has 0 training rows.*or a smaller cv.gap \(now 100000\)'):
        cv_folds(load_config('etth2', ['cv.gap=100000']), 14400)


def test_a_part_without_a_window_is_named_with_its_setting():
    from tsforge.prepare import prepare

    cfg = load_config('etth2', ['split.kind=ratio', 'split.val=0.001', 'input_length=96', 'horizon=24'])
    with pytest.raises(ConfigError, match=r'the val part: no complete window .* give it more rows: split.val'):
        prepare(cfg).origins('val')


def test_blocked_folds_refuse_long_data(tmp_path):
    t = pd.date_range('2024-01-01', periods=400, freq='h')
    df = pd.concat([pd.DataFrame({'id': s, 'date': t, 'y': np.arange(400.0)}) for s in 'ab'])
    df.to_csv(tmp_path / 'long.csv', index=False)
    cfg = load_config(
        'etth2',
        [
            'data.dataset=null',
            f'data.path={tmp_path / "long.csv"}',
            'data.format=long',
            'data.id_col=id',
            'data.target=y',
            'split.kind=ratio',
            'input_length=24',
            'horizon=12',
            'cv.window=blocked',
        ],
    )
    with pytest.raises(ConfigError, match='cv.window=blocked: wide-format data only'):
        cv_folds(cfg, 400)
