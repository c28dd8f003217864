"""The promotion gate, the train job's order of commitment, nested train runs and heartbeats, in this process on a
throw-away store (cheap models on L=48, H=24)."""

import math, os, time

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import champion

from tsforge import registry, runs
from tsforge.config import load_config
from tsforge.train import train

SMALL = ['input_length=48', 'horizon=24', 'registry.model_name=gate']


@pytest.fixture
def home(own_store):
    "A fresh store for one test; MLflow is pointed back at the previous store afterwards."
    return own_store


def test_gate_moves_alias_only_for_a_better_model(home):
    first = train(load_config('etth1', ['model=naive', *SMALL]))
    assert first.promoted and first.version == '1' and first.champion_metric is None
    assert 'no version held @champion' in first.promotion.reason
    better = train(load_config('etth1', ['model=linear', *SMALL]))
    assert better.promoted and champion('gate') == '2'
    assert better.champion_metric == first.metrics['test_mse'] and better.candidate_metric == better.metrics['test_mse']
    worse = train(load_config('etth1', ['model=naive', *SMALL]))
    assert not worse.promoted and worse.version == '3' and champion('gate') == '2'
    assert worse.promotion.reason.startswith('test_mse ') and 'of v2' in worse.promotion.reason
    c = MlflowClient()
    for tags in (c.get_model_version('gate', '3').tags, c.get_run(worse.run_id).data.tags):
        assert tags['tsforge.promote.decision'] == 'kept' and tags['tsforge.promote.champion_version'] == '2'
        assert float(tags['tsforge.promote.candidate']) == worse.metrics['test_mse']
        assert float(tags['tsforge.promote.champion']) == better.metrics['test_mse']
    # the run was FINISHED before its version existed
    run = c.get_run(worse.run_id)
    assert run.info.status == 'FINISHED'
    assert run.info.end_time <= c.get_model_version('gate', '3').creation_timestamp


def test_gate_refuses_models_scored_on_another_test_part(home):
    train(load_config('etth1', ['model=naive', *SMALL]))
    other = train(load_config('etth1', ['model=naive', *SMALL[:1], 'horizon=12', SMALL[2]]))
    assert not other.promoted and champion('gate') == '1'
    assert other.promotion.reason.startswith('not comparable') and 'horizon: 12 vs 24' in other.promotion.reason
    forced = train(load_config('etth1', ['model=naive', *SMALL[:1], 'horizon=12', SMALL[2], 'registry.promote=always']))
    assert forced.promoted and champion('gate') == '3' and forced.promotion.reason == 'registry.promote=always'


def test_gate_refuses_a_champion_without_test_part(home):
    "A champion trained before tsforge recorded test parts is not silently replaced."
    first = train(load_config('etth1', ['model=naive', *SMALL]))
    MlflowClient().delete_tag(first.run_id, registry.TEST_PART_TAG)
    nxt = train(load_config('etth1', ['model=linear', *SMALL]))
    assert not nxt.promoted and 'does not record the test part' in nxt.promotion.reason
    assert 'registry.promote=always' in nxt.promotion.reason


def test_registry_disabled_registers_nothing(home):
    r = train(load_config('etth1', ['model=naive', *SMALL, 'registry.enabled=false']))
    assert r.version is None and r.promotion is None and not r.promoted
    assert not MlflowClient().search_model_versions("name='gate'")


def test_bad_policy_is_a_config_error(home):
    from tsforge.config import ConfigError

    with pytest.raises(ConfigError, match=r"registry.promote: Input should be 'always' or 'if_better'"):
        load_config('etth1', ['registry.promote=sometimes'])


def test_train_nested_under_a_parent_run(home):
    cfg = load_config('etth1', ['model=naive', *SMALL])
    with runs.start_run(cfg, 'parent', tags={'tsforge.job': 'tune'}) as parent:
        r = train(cfg, nested=True)
        assert mlflow.active_run().info.run_id == parent.info.run_id  # the parent is active again
    c = MlflowClient()
    child = c.get_run(r.run_id)
    assert child.data.tags['mlflow.parentRunId'] == parent.info.run_id and child.info.status == 'FINISHED'
    assert c.get_run(parent.info.run_id).info.status == 'FINISHED' and r.promoted
    r2 = train(cfg, parent_run_id=parent.info.run_id)
    assert c.get_run(r2.run_id).data.tags['mlflow.parentRunId'] == parent.info.run_id


def test_runs_carry_where_they_run_and_a_heartbeat(home, monkeypatch):
    monkeypatch.setenv('TSFORGE_HEARTBEAT_S', '0.1')
    cfg = load_config('etth1', ['model=naive', *SMALL])
    with runs.start_run(cfg, 'beating') as run:
        tags = run.data.tags
        assert tags['tsforge.pid'] == str(os.getpid()) and tags['tsforge.host'] and tags['tsforge.started']
        first, t0 = tags['tsforge.heartbeat'], time.time()
        while MlflowClient().get_run(run.info.run_id).data.tags['tsforge.heartbeat'] == first and time.time() - t0 < 30:
            time.sleep(0.05)
        assert MlflowClient().get_run(run.info.run_id).data.tags['tsforge.heartbeat'] > first
    # a RUNNING run of this live process is never reconciled
    with runs.start_run(cfg, 'alive') as run:
        assert runs.reconcile(grace=3600) == []
    assert MlflowClient().get_run(run.info.run_id).info.status == 'FINISHED'


def test_failed_body_marks_failed_with_reason(home):
    cfg = load_config('etth1', ['model=naive', *SMALL])
    with pytest.raises(RuntimeError):
        with runs.start_run(cfg, 'fails') as run:
            raise RuntimeError('boom')
    r = MlflowClient().get_run(run.info.run_id)
    assert r.info.status == 'FAILED' and r.data.tags['tsforge.error'] == 'RuntimeError: boom'


def test_an_undefined_gate_metric_is_never_promoted(home, tmp_path):
    """A target that repeats itself every 24 rows: its MSIS is undefined (M4 divides by the mean 24-lag difference,
    0 here), so the run logs nan with a warning saying why, not inf, and a nan gate metric is never promoted."""
    t = pd.date_range('2020-01-01', periods=600, freq='h')
    csv = tmp_path / 'periodic.csv'
    pd.DataFrame({'date': t.strftime('%Y-%m-%d %H:%M:%S'), 'OT': np.tile(np.arange(24.0), 25)}).to_csv(csv, index=False)
    over = ['data.dataset=null', f'data.path={csv}', 'model=naive', 'input_length=24', 'horizon=8']
    over += ['registry.model_name=gate', 'registry.metric=test_80_msis']
    with pytest.warns(UserWarning, match=r"test_<level>_msis is nan .*\['OT'\].*lag 24"):
        r = train(load_config('etth1', over))
    assert math.isnan(r.metrics['test_80_msis']) and np.isfinite(r.metrics['test_80_winkler'])
    assert not r.promoted and champion('gate') is None
    assert r.promotion.reason.endswith('test_80_msis=nan, not a finite number'), r.promotion.reason
