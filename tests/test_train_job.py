"""The train job through papermill: what a run logs, the registered bundle in a fresh process, failures."""

import json, os, subprocess, sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import ROOT, artifacts, champion, last_run, papermill, versions
from tsforge import bundle, store
from tsforge.config import load_config
from tsforge.data import ETT_SHA256
from tsforge.prepare import prepare
from tsforge.train import train


@pytest.fixture(scope='module')
def run(trained):
    store.configure()
    return MlflowClient().get_run(trained['run_id'])


def test_run_logs_config_data_metrics_and_notebook(run, trained):
    assert run.info.status == 'FINISHED'
    m = run.data.metrics
    for k in (
        'test_mse',
        'test_mae',
        'test_windows',
        'val_mse',
        'val_mae',
        'val_windows',
        'test_mse_orig',
        'test_mae_orig',
    ):
        assert k in m, k
    assert m['test_windows'] == 2785 and m['val_windows'] == 2785 and m['test_mse'] <= 0.054
    p = run.data.params
    assert (p['model'], p['horizon'], p['input_length'], p['data.dataset']) == ('linear', '96', '336', 'ETTh1')
    assert run.data.tags['data.sha256'] == ETT_SHA256['ETTh1']
    assert run.data.tags['versions.mlflow'] == mlflow.__version__
    if (ROOT / '.git').exists():
        assert len(run.data.tags['mlflow.source.git.commit'].split('-')[0]) == 40
    arts = artifacts(run.info.run_id)
    for a in (
        'config.yaml',
        'predictions.parquet',
        'forecast.png',
        'environment.json',
        'data_report.json',
        'notebook/train-etth1.ipynb',
    ):
        assert a in arts, (a, arts)
    cfg_yaml = mlflow.artifacts.load_text(f'runs:/{run.info.run_id}/config.yaml')
    assert 'model: linear' in cfg_yaml


def test_predictions_table(run):
    pred = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path='predictions.parquet')
    )
    assert list(pred.columns) == ['origin', 'target_time', 'step', 'series', 'y_true', 'y_pred'] + [
        f'{s}_{lv}' for lv in (80, 95) for s in ('lo', 'hi')
    ]  # the conformal bands (intervals.levels)
    assert len(pred) == 2785 * 96 and pred.step.min() == 1 and pred.step.max() == 96
    assert np.isclose(((pred.y_true - pred.y_pred) ** 2).mean(), run.data.metrics['test_mse_orig'])
    prep = prepare(load_config('etth1'))
    truth = prep.frame.set_index('date').OT
    first = pred[pred.origin == pred.origin.min()]
    assert first.target_time.iloc[0] == first.origin.iloc[0] + pd.Timedelta('1h')
    assert np.allclose(first.y_true.to_numpy(), truth.loc[first.target_time].to_numpy())


def test_registered_with_alias(trained, run):
    mv = MlflowClient().get_model_version_by_alias('tsforge-etth1', 'champion')
    assert mv.run_id == run.info.run_id and 'champion' in mv.aliases


def test_bundle_loads_in_fresh_process(trained, run, tmp_path):
    "A new Python process loads the registered pyfunc by alias and forecasts like the run's predictions."
    prep = prepare(load_config('etth1'))
    o = int(prep.origins('test')[100])
    hist = prep.frame.iloc[o - 400 : o].copy()
    hist['date'] = hist['date'].astype(str)
    hist.to_csv(tmp_path / 'hist.csv', index=False)
    code = (
        'import mlflow, pandas as pd, sys\n'
        'from tsforge.store import configure\n'
        'configure()\n'
        "m = mlflow.pyfunc.load_model('models:/tsforge-etth1@champion')\n"
        f"out = m.predict(pd.read_csv({str(tmp_path / 'hist.csv')!r}), params={{'horizon': 24}})\n"
        "print(out.to_json(orient='records', date_format='iso'))\n"
    )
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert r.returncode == 0, r.stderr[-2000:]
    fc = pd.DataFrame(json.loads(r.stdout.strip().splitlines()[-1]))
    pred = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path='predictions.parquet')
    )
    exp = pred[pred.origin == prep.frame.date.iloc[o - 1]].sort_values('step').y_pred.to_numpy()[:24]
    assert len(fc) == 24 and np.allclose(fc.OT.to_numpy(), exp, atol=1e-6)


def test_failed_job_bad_data_marks_failed_and_moves_no_alias(trained, tmp_path):
    before_alias, before_versions = champion(), set(versions())
    assert before_alias is not None
    df = pd.read_csv(os.path.join(os.environ['TSFORGE_DATA_DIR'], 'ETTh1.csv'))
    df['OT'] = df['OT'].astype(object)
    df.loc[500, 'OT'] = 'broken'
    df.to_csv(tmp_path / 'broken.csv', index=False)
    r = papermill(
        'train.ipynb', tmp_path / 'out.ipynb', 'etth1', ['data.dataset=null', f'data.path={tmp_path / "broken.csv"}']
    )
    assert (
        r.returncode != 0
        and 'DataError' in r.stderr
        and 'OT: 1 non-numeric value(s), first at: 2016-07-21 20:00:00' in r.stderr
    )
    last = last_run()
    assert last.info.status == 'FAILED' and last.data.params['data.path'].endswith('broken.csv')
    assert champion() == before_alias and set(versions()) == before_versions


def test_deleted_tracking_experiment_is_named(trained):
    "An experiment in MLflow's trash: one ConfigError naming tracking.experiment and how to restore it, not MLflow's."
    from tsforge.config import ConfigError

    cfg = load_config('etth1', ['model=naive', 'input_length=48', 'horizon=12', 'tracking.experiment=binned'])
    client = MlflowClient()
    client.delete_experiment(store.experiment_id('binned'))
    with pytest.raises(
        ConfigError, match=r"tracking.experiment: 'binned' is a deleted MLflow experiment .* restore it"
    ):
        train(cfg)


def test_failed_job_in_fit_marks_failed(trained):
    "The job's library call (`train`, what nbs/train.ipynb calls) failing in fit: the run FAILED, no alias moved."
    before_alias, before_versions = champion(), set(versions())
    assert before_alias is not None
    cfg = load_config('etth1', ['model=seasonal_naive'])
    cfg = cfg.model_copy(update={'model_params': {'period': 400}})  # past the load-time check: the fit fails
    with pytest.raises(ValueError, match='model_params.period=400 must be <= input_length=336'):
        train(cfg)
    assert last_run().info.status == 'FAILED'
    assert champion() == before_alias and set(versions()) == before_versions


@pytest.mark.slow
def test_overrides_as_documented(store, tmp_path):
    "`-y 'overrides: [model=naive, horizon=96]'` works, and registers under the config's name."
    r = papermill(
        'train.ipynb',
        tmp_path / 'out.ipynb',
        'etth1',
        ['model=naive', 'horizon=96', 'registry.model_name=tsforge-naive-test'],
    )
    assert r.returncode == 0, r.stderr[-2000:]
    mv = MlflowClient().get_model_version_by_alias('tsforge-naive-test', 'champion')
    run = MlflowClient().get_run(mv.run_id)
    assert run.data.params['model'] == 'naive' and round(run.data.metrics['test_mse'], 3) == 0.069


def test_own_csv_with_minimal_config(store, tmp_path):
    "A user's CSV needs only path, time column and target: frequency inferred, ratio split by default."
    t = np.arange(600)
    df = pd.DataFrame(
        {
            'day': pd.date_range('2022-01-01', periods=600, freq='D').strftime('%Y-%m-%d'),
            'units': 100 + 10 * np.sin(2 * np.pi * t / 7) + 0.05 * t,
        }
    )
    df.to_csv(tmp_path / 'sales.csv', index=False)
    (tmp_path / 'sales.yaml').write_text(
        f'defaults: [base, _self_]\nname: sales\ndata:\n  path: {tmp_path / "sales.csv"}\n'
        '  time_col: day\n  target: units\ninput_length: 28\nhorizon: 7\n'
    )
    res = train(load_config(str(tmp_path / 'sales.yaml')))  # the job's library call (the job itself: above)
    mv = MlflowClient().get_model_version_by_alias('tsforge-sales', 'champion')
    assert mv.run_id == res.run_id
    run = MlflowClient().get_run(mv.run_id)
    assert run.data.params['split.kind'] == 'auto' and run.data.metrics['test_mse'] < 0.05
    m = bundle.load_model('models:/tsforge-sales@champion')
    assert m.state.freq == 'D'
    fc = m.forecast(df.iloc[-40:])
    assert fc.day.astype(str).tolist()[0] == '2023-08-24' and len(fc) == 7
