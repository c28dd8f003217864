"""The tune job: search-space validation, no test-part leakage, resume to the budget, two workers on one real
PostgreSQL study, a SIGKILLed worker, SIGTERM, the papermill job with the promotion gate, all trials failing, Ray."""

import os, signal, subprocess, sys, time

import numpy as np
import optuna
import pandas as pd
import pytest
import sqlalchemy
from mlflow import MlflowClient

from conftest import ROOT, artifacts, children, free_port, papermill, parent_runs, pg_database
from tsforge.config import ConfigError, load_config
from tsforge.tune import tune

SMALL = [
    'input_length=96',
    'horizon=24',
    'cv.n_windows=3',
    'cv.horizon=240',
    'cv.step=240',
]
SPACE = [
    '+tune.space.input_length={low: 48, high: 192, step: 48}',
    '+tune.space.model_params.alpha={low: 0.001, high: 10.0, log: true}',
]
GBM = [
    'cv.n_windows=2',
    'model=lightgbm',
    '+model_params.n_estimators=60',
    '+model_params.max_rows=20000',
    '+model_params.num_threads=1',
    '+model_params.folds=2',
    '+tune.space.input_length={low: 48, high: 192, step: 48}',
    '+tune.space.model_params.num_leaves={low: 8, high: 32}',
]


def startup(overrides):
    """`overrides` with 2 random trials before the sampler's model and 2 before the median pruner prunes, where the
    search reads them (a setting the chosen sampler or pruner does not read is refused)."""
    o = list(overrides)
    given = lambda key: any(x.startswith(f'tune.{key}=') for x in o)
    if 'tune.sampler=random' not in o and not given('n_startup_trials'):
        o.append('tune.n_startup_trials=2')
    if not any(x.startswith('tune.pruner=') and x != 'tune.pruner=median' for x in o) and not given(
        'pruner_startup_trials'
    ):
        o.append('tune.pruner_startup_trials=2')
    return o


def small(*extra, space=SPACE, config='etth1'):
    return load_config(config, startup(SMALL + list(space) + list(extra)))


@pytest.fixture(scope='module')
def home(module_store):
    "A throw-away store (MLflow + Optuna) for this module; tests keep apart by study and experiment names."
    return module_store


def tune_runs(study=None):
    "Parent tune runs, newest first (of one study)."
    return parent_runs('tune', study)


# --- validation: one ConfigError naming the field, before any trial ---------------------------------------------------


@pytest.mark.parametrize(
    'extra, expected',
    [
        (['+tune.space.inptu_length={low: 48, high: 96}'], 'tune.space.inptu_length: unknown key'),
        (
            ['+tune.space.model_params.num_leaves={low: 8, high: 64}'],
            'tune.space.model_params.num_leaves: model linear has no parameter',
        ),
        (
            ['+tune.space.input_length={low: 192, high: 48}'],
            'tune.space.input_length: empty range: low (192) > high (48)',
        ),
        (
            ['+tune.space.input_length={low: 48.5, high: 96}'],
            'tune.space.input_length: value 48.5 is not valid for input_length',
        ),
        (['+tune.space.model_params.alpha=[]'], 'tune.space.model_params.alpha: empty choices'),
        (['+tune.space.input_length={low: 0, high: 96, log: true}'], 'a log scale needs low > 0'),
        (['+tune.space.horizon={low: 24, high: 96}'], 'tune.space.horizon: horizon cannot be searched'),
        (
            ['+tune.space.model=[linear, prophet]'],
            "tune.space.model: value 'prophet' is not valid for model: model: unknown model",
        ),
        (
            [
                '+tune.space.model=[linear, naive]',
                '+tune.model_space.lightgbm={model_params.num_leaves: {low: 8, high: 9}}',
            ],
            'tune.model_space.lightgbm: lightgbm is not among tune.space.model choices',
        ),
        (
            [
                '+tune.space.model=[linear, lightgbm]',
                '+tune.model_space.lightgbm={model_params.num_leafs: {low: 8, high: 9}}',
            ],
            "tune.model_space.lightgbm.model_params.num_leafs: model lightgbm has no parameter 'num_leafs'",
        ),
        (  # a float range of an integer key: every trial drawing 30.7 would fail
            ['+tune.space.input_length={low: 24.0, high: 48.0}'],
            'tune.space.input_length: value 24.5 is not valid for input_length',
        ),
        (  # Optuna would trim high to 48 silently
            ['+tune.space.input_length={low: 24, high: 50, step: 4}'],
            'tune.space.input_length: step 4 does not divide the range 24..50: the highest value would be 48',
        ),
        (  # one Optuna parameter with two distributions: every trial would fail
            [
                '+tune.space.model_params.alpha={low: 0.01, high: 1.0, log: true}',
                '+tune.model_space.linear={model_params.alpha: {low: 0.1, high: 1.0}}',
            ],
            'tune.model_space.linear.model_params.alpha: model_params.alpha is searched in tune.space too',
        ),
        (
            ['tune.sampler=random', 'tune.n_startup_trials=3'],
            'tune.n_startup_trials=3 is set but tune.sampler is random',
        ),
        (
            ['tune.pruner=none', 'tune.pruner_startup_trials=3'],
            'tune.pruner_startup_trials=3 is set but tune.pruner is',
        ),
        (['tune.executor=serial', 'tune.n_workers=4'], 'tune.n_workers=4 is set but tune.executor is serial'),
        (['cv.executor=serial', 'cv.n_jobs=4'], 'cv.n_jobs=4 is set but cv.executor is serial'),
        (['tune.sampler=bayes'], "tune.sampler: Input should be 'tpe', 'random', 'cmaes' or 'gp'"),
        (['tune.n_trials=0'], 'tune.n_trials: Input should be greater than or equal to 1'),
    ],
)
def test_bad_search_space_names_field(extra, expected):
    with pytest.raises(ConfigError) as e:
        small(*extra, space=[])
    assert expected in str(e.value), str(e.value)


def test_empty_space_and_unreachable_storage_fail_at_once(home, monkeypatch):
    before = len(tune_runs())
    with pytest.raises(ConfigError, match='tune.space: nothing to search'):
        tune(small(space=[]), progress=False)
    url = f'postgresql://tsforge:s3cret@127.0.0.1:{free_port()}/optuna'
    with pytest.raises(ConfigError, match='tune.storage: the URL .* holds a password written into the config'):
        small(f'tune.storage={url}')  # a literal password is refused at load (it would be logged)
    monkeypatch.setenv('TSFORGE_TEST_STORAGE', url)
    with pytest.raises(ConfigError) as e:
        tune(small('tune.storage=${oc.env:TSFORGE_TEST_STORAGE}'), progress=False)
    msg = str(e.value)
    assert (
        'tune.storage: cannot open the study storage postgresql://tsforge:***@127.0.0.1' in msg and 's3cret' not in msg
    )
    assert len(tune_runs()) == before  # nothing was logged


def test_conditional_space_across_families(home):
    "When the model is searched, each trial carries only its own family's parameters; the best retrains as that family."
    cfg = small(
        '+tune.space.model=[naive, linear]',
        '+tune.model_space.linear={model_params.alpha: {low: 0.01, high: 1.0, log: true}}',
        'tune.executor=serial',
        'tune.n_trials=5',
        'tune.sampler=random',
        'tune.retrain=false',
        'tune.study_name=families',
        space=['+tune.space.input_length={low: 48, high: 96, step: 48}'],
    )
    res = tune(cfg, progress=False)
    for t in res.study.get_trials():
        fam = t.params['model']
        assert set(t.params) == (
            {'model', 'input_length', 'linear/model_params.alpha'} if fam == 'linear' else {'model', 'input_length'}
        )
    assert res.best_config.model == res.best_params['model']


def test_blocked_folds_and_relative_metric(home):
    "cv.window=blocked with tune.metric=rel_mse: a trial's value is the mean of its folds' MSE over the naive MSE."
    cfg = small(
        'cv.window=blocked',
        'tune.metric=rel_mse',
        'tune.executor=serial',
        'tune.n_trials=3',
        'tune.retrain=false',
        'tune.study_name=blocked-rel',
    )
    res = tune(cfg, progress=False)
    done = res.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) >= 2
    for t in done:
        folds = t.user_attrs['folds']
        assert [f['test_end'] for f in folds] == [11040, 11280, 11520]  # the blocks, before the test part
        assert t.value == pytest.approx(np.mean([f['rel_mse'] for f in folds]), rel=1e-12)
        assert all(0 < f['rel_mse'] < 1 for f in folds)  # ridge beats the naive forecast on ETTh1 S


# --- the objective never sees the test part ---------------------------------------------------------------------------


def test_test_part_never_read(home, tmp_path):
    src = pd.read_csv(os.path.join(os.environ['TSFORGE_DATA_DIR'], 'ETTh1.csv')).iloc[:14400]
    changed = src.copy()
    rng = np.random.default_rng(0)
    changed.loc[11520:, 'OT'] = rng.normal(0, 50, len(changed) - 11520)  # every test row of the target, replaced
    values = []
    for name, df in (('orig', src), ('changed', changed)):
        df.to_csv(tmp_path / f'{name}.csv', index=False)
        cfg = small(
            'data.dataset=null',
            f'data.path={tmp_path / name}.csv',
            'split.kind=ett',
            'tune.executor=serial',
            'tune.n_trials=4',
            'tune.sampler=random',
            'tune.retrain=false',
            'tune.study_name=leak',
            f'tune.storage=sqlite:///{tmp_path / name}.db',
        )
        res = tune(cfg, progress=False)
        values.append([(t.number, t.state.name, t.value, t.params) for t in res.study.get_trials()])
        folds = [f for t in res.study.get_trials() for f in t.user_attrs['folds']]
        assert max(f['test_end'] for f in folds) <= 11520 and max(f['train_end'] for f in folds) <= 11520
    assert values[0] == values[1]
    assert all(v[1] in ('COMPLETE', 'PRUNED') for v in values[0])


# --- resume -----------------------------------------------------------------------------------------------------------


def test_same_study_resumes_to_the_budget(home):
    base = ['tune.executor=serial', 'tune.retrain=false', 'tune.sampler=random', 'tune.study_name=null']
    r1 = tune(small(*base, 'tune.n_trials=3'), progress=False)
    r2 = tune(small(*base, 'tune.n_trials=5'), progress=False)
    r3 = tune(small(*base, 'tune.n_trials=5'), progress=False)
    assert r1.study_name == r2.study_name == r3.study_name == 'tune-etth1-linear-S-h24'
    assert list(r2.trials.number) == [0, 1, 2, 3, 4] and list(r3.trials.number) == [0, 1, 2, 3, 4]
    assert r1.trials.default.iloc[0] and r1.trials.input_length.iloc[0] == 96  # the experiment's own values first
    runs = tune_runs('tune-etth1-linear-S-h24')
    assert [len(children(r.info.run_id)) for r in runs] == [0, 2, 3]  # newest first: each trial logged once
    assert (home / 'optuna.db').exists()
    with pytest.raises(ConfigError, match="study 'tune-etth1-linear-S-h24' belongs to experiment 'etth1', not 'other'"):
        tune(small(*base, 'name=other', 'tune.study_name=tune-etth1-linear-S-h24'), progress=False)


def test_resume_that_cannot_be_compared_is_refused_before_any_trial(home):
    "Another space, other folds or another model on resume: one ConfigError naming both values, nothing run or logged."
    base = ['tune.executor=serial', 'tune.retrain=false', 'tune.sampler=random', 'tune.study_name=cmp']
    il = ['+tune.space.input_length={low: 48, high: 192, step: 48}']
    r = tune(small(*base, 'tune.n_trials=2', space=il), progress=False)
    assert r.study.user_attrs['tsforge.terms']['cv.n_windows'] == 3
    before = len(tune_runs('cmp'))
    for extra, space, expected in [
        (
            ['cv.n_windows=2'],
            il,
            "tune.study_name 'cmp': this study was created with cv.n_windows=3, now 2; trials on other folds cannot "
            'be compared: use another tune.study_name',
        ),
        (
            [],
            [*il, '+tune.space.model_params.norm=[last, mean]'],
            'tune.space.model_params.norm not searched, now [last, mean]; trials from another search space',
        ),
        (
            [],
            ['+tune.space.input_length={low: 48, high: 96, step: 48}'],
            'tune.space.input_length={low: 48, high: 192, step: 48}, now {low: 48, high: 96, step: 48}',
        ),
        (['model=naive'], il, 'model=linear, now naive; trials of another model cannot be compared'),
        (['+model_params.norm=mean'], il, 'model_params.norm=last, now mean; trials with other model parameters'),
        (['+features.calendar=[hour]'], il, 'features.calendar=[], now [hour]; trials with other features cannot'),
        (['data.on_issue=fill'], il, 'data.on_issue=fail, now fill; trials on other data cannot be compared'),
    ]:
        with pytest.raises(ConfigError) as e:
            tune(small(*base, 'tune.n_trials=4', *extra, space=space), progress=False)
        assert expected in str(e.value), str(e.value)
    study = optuna.load_study(study_name='cmp', storage=f'sqlite:///{home / "optuna.db"}')
    assert len(study.trials) == 2 and len(tune_runs('cmp')) == before  # no trial queued or run, no run logged
    assert len(tune(small(*base, 'tune.n_trials=3', space=il), progress=False).trials) == 3  # the same: resumed


def test_study_of_an_older_tsforge_takes_this_runs_terms(home):
    "A study without recorded terms (made before they were recorded) is resumed with a warning, then checked."
    url = f'sqlite:///{home / "optuna.db"}'
    old = optuna.create_study(study_name='older', storage=url)
    old.set_user_attr('metric', 'cv_mse')
    old.set_user_attr('config', 'etth1')
    dist = optuna.distributions.IntDistribution(48, 192, step=48)
    old.add_trial(
        optuna.trial.create_trial(params={'input_length': 96}, distributions={'input_length': dist}, value=1.0)
    )
    base = ['tune.executor=serial', 'tune.retrain=false', 'tune.study_name=older']
    il = ['+tune.space.input_length={low: 48, high: 192, step: 48}']
    with pytest.warns(UserWarning, match="tune.study_name 'older': this study was made by an older tsforge"):
        r = tune(small(*base, 'tune.n_trials=2', space=il), progress=False)
    assert len(r.trials) == 2 and r.study.user_attrs['tsforge.terms']['cv.n_windows'] == 3
    # terms recorded before model parameters and features were: taken from this run, with a warning, then checked
    terms = r.study.user_attrs['tsforge.terms']
    r.study.set_user_attr('tsforge.terms', {k: v for k, v in terms.items() if not k.startswith(('model_p', 'feat'))})
    with pytest.warns(UserWarning, match='which did not record model_params, features;'):
        tune(small(*base, 'tune.n_trials=2', space=il), progress=False)
    assert optuna.load_study(study_name='older', storage=url).user_attrs['tsforge.terms'] == terms
    with pytest.raises(ConfigError, match='model_params.norm=last, now mean'):
        tune(small(*base, 'tune.n_trials=3', '+model_params.norm=mean', space=il), progress=False)
    with pytest.raises(ConfigError, match='cv.n_windows=3, now 2'):
        tune(small(*base, 'tune.n_trials=3', 'cv.n_windows=2', space=il), progress=False)


# --- two workers on one real PostgreSQL study -------------------------------------------------------------------------


def test_two_local_workers_on_postgres_run_exactly_the_budget(home, postgres):
    cfg = small(
        f"tune.storage='{pg_database(postgres)}'",
        'tune.executor=local',
        'tune.n_workers=2',
        'tune.n_trials=4',
        'tune.retrain=false',
        'tune.study_name=pg',
        'tune.pruner=none',
        *GBM,
        space=[],
    )
    res = tune(cfg, progress=False)
    trials = res.study.get_trials()
    assert sorted(t.number for t in trials) == list(range(4))
    assert all(t.state.is_finished() for t in trials)
    assert len({t.user_attrs['worker_pid'] for t in trials}) == 2 and os.getpid() not in {
        t.user_attrs['worker_pid'] for t in trials
    }
    assert res.storage.startswith('postgresql://postgres') and res.storage == res.storage.replace('password', '')
    run = tune_runs()[0]
    assert run.data.tags['tune.storage'] == res.storage and run.data.tags['tune.study_name'] == res.study_name
    kids = children(run.info.run_id)
    assert sorted(int(k.data.tags['optuna.trial.number']) for k in kids) == list(range(4))
    status = {'COMPLETE': 'FINISHED', 'PRUNED': 'KILLED'}
    for k in kids:
        t = trials[int(k.data.tags['optuna.trial.number'])]
        assert k.info.status == status[t.state.name] and k.data.tags['optuna.trial.state'] == t.state.name
        assert int(k.data.params['input_length']) == t.params['input_length'] and k.data.params['model'] == 'lightgbm'
        hist = MlflowClient().get_metric_history(k.info.run_id, 'mse')
        assert sorted(m.step for m in hist) == list(range(len(t.user_attrs['folds'])))


# --- a worker SIGKILLed mid-trial, and SIGTERM on the job -------------------------------------------------------------

JOB = """import sys
from tsforge.config import load_config
from tsforge.tune import tune
if __name__ == '__main__':
    r = tune(load_config('etth1', sys.argv[1:]), progress=False)
    print('COUNTS', r.counts())
"""


def start_job(tmp_path, overrides):
    script = tmp_path / 'job.py'
    script.write_text(JOB)
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), *startup(overrides)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def running_trial(url, name, proc, timeout=120):
    "Wait for a RUNNING trial that has told its worker pid; return it."
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        try:
            study = optuna.load_study(study_name=name, storage=url)
            for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                if 'worker_pid' in t.user_attrs and t.user_attrs.get('folds') is None:
                    return t
        except KeyError:
            pass  # the study is not created yet
        time.sleep(0.1)
    raise TimeoutError('no running trial')


@pytest.mark.filterwarnings('ignore:Heartbeat of storage:UserWarning')
def test_objective_beats_before_it_tells_its_worker(tmp_path):
    "The first heartbeat is in the study before the trial names its worker: a worker killed after that goes stale."
    from tsforge.tune import objective

    storage = optuna.storages.RDBStorage(f'sqlite:///{tmp_path / "beat.db"}', heartbeat_interval=60)
    study = optuna.create_study(storage=storage)  # Optuna wraps the RDB storage in its cache, as the job's workers see
    trial = study.ask()  # no Optuna heartbeat thread: only the objective beats
    with pytest.raises(Exception):
        objective(small(), data=None)(trial)  # fails at once, after the first beat
    assert 'worker_pid' in study.trials[0].user_attrs and 'error' in study.trials[0].user_attrs
    with storage.engine.connect() as c:
        beats = c.execute(sqlalchemy.text('select trial_id from trial_heartbeats')).fetchall()
    assert [b[0] for b in beats] == [trial._trial_id]


@pytest.mark.slow
def test_sigkilled_worker_trial_fails_and_study_completes(home, tmp_path):
    url = f'sqlite:///{tmp_path / "kill.db"}'
    proc = start_job(
        tmp_path,
        SMALL
        + GBM
        + [
            f'tune.storage={url}',
            'tune.executor=local',
            'tune.n_workers=2',
            'tune.n_trials=3',
            'tune.heartbeat_interval=1',
            'tune.grace_period=2',
            'tune.pruner=none',
            'tune.retrain=false',
        ],
    )
    try:
        victim = running_trial(url, 'tune-etth1-lightgbm-S-h24', proc)
        os.kill(victim.user_attrs['worker_pid'], signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name='tune-etth1-lightgbm-S-h24', storage=url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2]
    assert trials[victim.number].state == optuna.trial.TrialState.FAIL
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials if t.number != victim.number)
    run = tune_runs()[0]
    assert run.info.status == 'FINISHED' and run.data.metrics['trials_failed'] == 1
    kid = [k for k in children(run.info.run_id) if k.data.tags['optuna.trial.number'] == str(victim.number)][0]
    assert kid.info.status == 'FAILED' and 'no heartbeat' in kid.data.tags['tune.error']


@pytest.mark.slow
def test_sigterm_fails_running_trials_kills_run_registers_nothing(home, tmp_path):
    url = f'sqlite:///{tmp_path / "term.db"}'
    proc = start_job(
        tmp_path,
        SMALL
        + GBM
        + [f'tune.storage={url}', 'tune.executor=local', 'tune.n_workers=2', 'tune.n_trials=6', 'tune.pruner=none'],
    )
    try:
        running_trial(url, 'tune-etth1-lightgbm-S-h24', proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    states = [t.state for t in optuna.load_study(study_name='tune-etth1-lightgbm-S-h24', storage=url).get_trials()]
    assert optuna.trial.TrialState.FAIL in states and optuna.trial.TrialState.RUNNING not in states, states
    run = tune_runs()[0]
    assert run.info.status == 'KILLED', run.info.status
    assert not MlflowClient().search_model_versions(f"run_id = '{run.info.run_id}'")
    assert not [k for k in children(run.info.run_id) if k.data.tags.get('tsforge.job') == 'train']


# --- the papermill job, the gate, and all trials failing --------------------------------------------------------------


@pytest.mark.slow
def test_tune_job_papermill_with_gate(home, tmp_path):
    from tsforge.train import train

    weak = train(
        load_config('etth1', ['name=gate', 'model=naive', 'input_length=96', 'horizon=24'])
    )  # the champion to beat
    assert weak.version == '1' and weak.promoted
    overrides = startup(SMALL) + [
        'name=gate',
        'tune.n_trials=4',
        'tune.executor=serial',  # worker processes (local, ray): the kill, resume and Ray tests
        '+tune.space.input_length={low: 48, high: 192, step: 48}',
    ]
    r = papermill('tune.ipynb', tmp_path / 'out.ipynb', 'etth1', overrides, env={'TSFORGE_HOME': str(home)})
    assert r.returncode == 0, r.stderr[-3000:]
    run = tune_runs()[0]
    assert run.info.status == 'FINISHED' and run.data.tags['tune.study_name'] == 'tune-gate-linear-S-h24'
    m = run.data.metrics
    assert m['trials_complete'] + m['trials_pruned'] == 4 and 'best_cv_mse' in m and 'default_cv_mse' in m
    arts = artifacts(run.info.run_id)
    for a in (
        'best_params.yaml',
        'trials.csv',
        'plots/optimization_history.png',
        'plots/param_importances.png',
        'plots/parallel_coordinate.png',
        'plots/slice.png',
        'notebook/out.ipynb',
        'config.yaml',
    ):
        assert a in arts, (a, arts)
    kids = children(run.info.run_id)
    retrain = [k for k in kids if k.data.tags.get('tsforge.job') == 'train']
    assert len(kids) == 5 and len(retrain) == 1 and retrain[0].info.status == 'FINISHED'
    assert run.data.tags['tune.promoted'] == 'true' and run.data.tags['tune.registered_version'] == '2'
    mv = MlflowClient().get_model_version_by_alias('tsforge-gate', 'champion')
    assert str(mv.version) == '2' and mv.run_id == retrain[0].info.run_id
    assert float(retrain[0].data.metrics['test_mse']) < float(
        MlflowClient().get_run(weak.run_id).data.metrics['test_mse']
    )
    nb = (tmp_path / 'out.ipynb').read_text()
    assert 'moved to v2' in nb and 'image/png' in nb
    assert MlflowClient().get_model_version('tsforge-gate', '2').tags['tune.best_trial'] == str(int(m['best_trial']))
    # the same search again: nothing left in the budget and the best trial unchanged: nothing retrained or registered
    again = tune(load_config('etth1', overrides), progress=False)
    assert len(again.trials) == 4 and again.train is None and 'tsforge-gate version 2' in again.retrain_skipped
    assert sorted(str(v.version) for v in MlflowClient().search_model_versions("name = 'tsforge-gate'")) == ['1', '2']
    assert str(MlflowClient().get_model_version_by_alias('tsforge-gate', 'champion').version) == '2'
    tags = tune_runs()[0].data.tags
    assert tags['tune.retrain'] == 'skipped' and tags['tune.registered_version'] == '2' and 'tune.promoted' not in tags


def test_ensemble_of_best_trials_is_retrained_registered_and_served(home):
    "`tune.ensemble=3`: the retrain fits one equal-weight `ensemble` of the 3 best distinct trials, each at its own L."
    from tsforge.bundle import load_model

    cfg = small(
        'name=ens', 'tune.executor=serial', 'tune.n_trials=5', 'tune.sampler=random', 'tune.ensemble=3',
        '+tune.space.model=[linear, naive]', '+tune.model_space.linear={model_params.norm: [last, mean]}',
        space=['+tune.space.input_length={low: 48, high: 192, step: 48}'],
    )  # fmt: skip
    res = tune(cfg, progress=False)
    done = sorted((t for t in res.study.get_trials() if t.state.name == 'COMPLETE'), key=lambda t: (t.value, t.number))
    top = []  # the 3 best with distinct values
    for t in done:
        if t.params not in [x.params for x in top]:
            top.append(t)
    top = [t.number for t in top[:3]]
    assert res.ensemble_trials == top and res.ensemble_trials[0] == res.best_number
    fc = res.retrain_config
    assert fc.model == 'ensemble' and fc.model_params['weights'] == 'equal'
    by_number = {t.number: t.params for t in res.study.get_trials()}
    assert [m['input_length'] for m in fc.model_params['members']] == [by_number[n]['input_length'] for n in top]
    assert [m['model'] for m in fc.model_params['members']] == [by_number[n]['model'] for n in top]
    assert fc.input_length == max(by_number[n]['input_length'] for n in top)
    run = tune_runs('tune-ens-models-S-h24')[0]
    assert run.data.tags['tune.ensemble_trials'] == ','.join(map(str, top))
    assert 'ensemble_config.yaml' in artifacts(run.info.run_id)
    cmp = res.comparison()  # the retrain's test figure sits in the ensemble's own column, not under the best trial
    ens_col = f'ensemble of trials {", ".join(map(str, top))}'
    assert cmp.loc['test_mse', ens_col] == res.train.metrics['test_mse'] and pd.isna(cmp.loc['test_mse', 'best'])
    served = load_model(f'models:/tsforge-ens/{res.train.version}', check_requirements=False)
    assert served.model.name == 'ensemble'
    assert [m.state.input_length for m in served.model.models] == [by_number[n]['input_length'] for n in top]
    from tsforge.models import _crop

    w = res.train.prep.windows('test')
    each = [m.predict(_crop(w, m.state.input_length)) for m in served.model.models]
    assert np.allclose(served.model.predict(w), np.mean(each, axis=0))


def test_ensemble_of_fewer_distinct_trials_than_asked_fails(home):
    "tune.ensemble above tune.n_trials is refused before any trial; too few distinct trials fail the job, no fallback."
    before = len(tune_runs())
    norm = ['+tune.space.model_params.norm=[last]']  # every trial the same: one distinct trial
    base = ['name=ensfew', 'tune.executor=serial', 'tune.study_name=ensfew']
    with pytest.raises(ConfigError, match=r'tune.ensemble=3: .* but tune.n_trials=2 .*lower tune.ensemble'):
        tune(small(*base, 'tune.n_trials=2', 'tune.ensemble=3', space=norm), progress=False)
    assert len(tune_runs()) == before  # refused before the study or a run
    with pytest.raises(RuntimeError) as e:
        tune(small(*base, 'tune.n_trials=2', 'tune.ensemble=2', space=norm), progress=False)
    msg = str(e.value)
    assert "tune.ensemble=2: study 'ensfew' has only 1 distinct completed trial(s) (2 completed" in msg, msg
    assert 'Lower tune.ensemble' in msg and 'raise tune.n_trials and rerun' in msg and 'resumes it' in msg, msg
    run = tune_runs('ensfew')[0]
    assert run.info.status == 'FAILED' and 'tune.ensemble_trials' not in run.data.tags
    assert MlflowClient().search_model_versions("name = 'tsforge-ensfew'") == []  # nothing registered


@pytest.mark.parametrize(
    'extra, expected',
    [
        (['tune.ensemble=0'], 'tune.ensemble: Input should be greater than or equal to 1'),
        (['tune.ensemble=2', '+tune.space.seed=[0, 1]'], 'tune.ensemble=2 averages the best trials'),
        (['tune.ensemble=2', 'model=ensemble'], "the experiment's model is ensemble already"),
    ],
)
def test_bad_tune_ensemble_names_field(extra, expected):
    with pytest.raises(ConfigError) as e:
        small(*extra)
    assert expected in str(e.value), str(e.value)


def test_all_trials_fail_job_fails_and_moves_no_alias(home):
    from tsforge.train import train

    train(load_config('etth1', ['name=allfail', 'model=naive', 'input_length=96', 'horizon=24']))
    cfg = small(
        'name=allfail',
        'tune.n_trials=3',
        'tune.executor=serial',
        'tune.enqueue_default=false',
        space=['+tune.space.input_length={low: 10000, high: 11000}'],
    )  # no fold has enough rows for these
    with pytest.raises(
        RuntimeError, match='no trial of study .* completed \\(3 failed\\); first error: ConfigError: cv: fold 0'
    ):
        tune(cfg, progress=False)
    run = tune_runs()[0]
    assert run.info.status == 'FAILED'
    kids = children(run.info.run_id)
    assert len(kids) == 3 and all(k.info.status == 'FAILED' and 'fold 0' in k.data.tags['tune.error'] for k in kids)
    versions = MlflowClient().search_model_versions("name = 'tsforge-allfail'")
    assert [str(v.version) for v in versions] == ['1']
    assert str(MlflowClient().get_model_version_by_alias('tsforge-allfail', 'champion').version) == '1'


# --- Ray --------------------------------------------------------------------------------------------------------------


def test_ray_executor(home, ray_local):
    res = tune(
        small('tune.executor=ray', 'tune.n_workers=2', 'tune.n_trials=4', 'tune.retrain=false', 'tune.study_name=ray'),
        progress=False,
    )
    trials = res.study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(t.state.is_finished() for t in trials)
    assert os.getpid() not in {t.user_attrs['worker_pid'] for t in trials}
    assert len(children(tune_runs()[0].info.run_id)) == 4


@pytest.mark.parametrize('sampler, pruner', [('cmaes', 'hyperband'), ('gp', 'successive_halving')])
def test_every_sampler_and_pruner(home, sampler, pruner):
    cfg = small(
        f'tune.sampler={sampler}',
        f'tune.pruner={pruner}',
        'tune.n_startup_trials=1',
        'tune.n_trials=3',
        'tune.executor=serial',
        'tune.retrain=false',
        f'tune.study_name=s-{sampler}-{pruner}',
    )
    res = tune(cfg, progress=False)
    assert len(res.trials) == 3 and res.counts()['FAIL'] == 0
    assert (
        type(res.study.pruner)
        .__name__.lower()
        .startswith({'hyperband': 'hyperband', 'successive_halving': 'successive', 'none': 'nop'}[pruner])
    )


# --- faults (issue 16): a killed job resumed, PostgreSQL stopped mid-search ------------------------------------------


def killed_study(url, name, proc, timeout=60):
    "After the job's process group is killed: fail its trials once their heartbeat is stale, as any process would."
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)  # the job's settings
        study = optuna.load_study(study_name=name, storage=storage)
        t0 = time.time()
        while study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) and time.time() - t0 < timeout:
            optuna.storages.fail_stale_trials(study)
            time.sleep(0.5)
    return study


@pytest.mark.slow
def test_killed_job_resumed_every_trial_has_a_child_run(home, tmp_path):
    script = tmp_path / 'job.py'
    script.write_text(JOB)
    # the job is killed while a trial runs; a tiny trial can finish between the check and the kill, leaving nothing
    # to fail: then the scenario is run again on a fresh study (a race of the test, not of the code under test)
    for attempt in range(3):
        url, name = f'sqlite:///{tmp_path / f"resume{attempt}.db"}', f'resume-after-kill-{attempt}'
        overrides = startup(SMALL + GBM + ['tune.pruner=none'])
        overrides += [f'tune.storage={url}', f'tune.study_name={name}', 'tune.executor=local', 'tune.n_workers=2']
        overrides += ['tune.n_trials=4', 'tune.heartbeat_interval=1', 'tune.grace_period=2']
        overrides += ['tune.retrain=false']
        proc = subprocess.Popen(
            [sys.executable, str(script), *overrides],
            env={**os.environ, 'PYTHONPATH': str(ROOT)},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            running_trial(url, name, proc)
            os.killpg(proc.pid, signal.SIGKILL)  # the job and its workers
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        failed = [t.number for t in killed_study(url, name, proc).get_trials() if t.state.name == 'FAIL']
        if failed:
            break
    assert failed, 'the killed job left no trial to fail (3 tries):\n' + out[-2000:]
    killed_run = tune_runs(name)[0]

    res = tune(load_config('etth1', overrides), progress=False)
    trials = {t.number: t for t in res.study.get_trials()}
    assert sorted(trials) == [0, 1, 2, 3]
    kids = [
        r
        for r in MlflowClient().search_runs(
            [killed_run.info.experiment_id], f"tags.`optuna.study_name` = '{name}'", max_results=1000
        )
    ]
    kids = [k for k in kids if 'tsforge.reconciled' not in k.data.tags]  # records a killed job left unfinished
    numbers = [int(k.data.tags['optuna.trial.number']) for k in kids]
    assert sorted(numbers) == sorted(trials), numbers  # every trial once, whatever ended it
    for k in kids:
        t = trials[int(k.data.tags['optuna.trial.number'])]
        assert k.data.tags['optuna.trial.state'] == t.state.name and k.info.status != 'RUNNING', k
        if t.number in failed:
            assert k.info.status == 'FAILED' and 'no heartbeat' in k.data.tags['tune.error']
            assert k.data.tags['tune.recorded_late'] == 'true' and k.data.tags['mlflow.parentRunId'] == res.run_id
    dead = MlflowClient().get_run(killed_run.info.run_id)
    assert dead.info.status == 'FAILED' and 'tsforge.reconciled' in dead.data.tags
    assert MlflowClient().get_run(res.run_id).data.metrics['trials_failed'] == len(failed)


@pytest.mark.slow
def test_postgres_stopped_mid_search_names_the_cause_first(home, tmp_path):
    pgserver = pytest.importorskip('pgserver')
    import shutil, tempfile

    d = tempfile.mkdtemp(prefix='pg', dir='/tmp')  # short: the Unix socket lives in it
    srv = pgserver.get_server(d, cleanup_mode='stop')
    url, name = srv.get_uri(), 'pg-stopped'
    proc = start_job(
        tmp_path,
        SMALL
        + GBM
        + [f"tune.storage='{url}'", f'tune.study_name={name}', 'tune.executor=serial', 'tune.n_trials=8']
        + ['tune.pruner=none', 'tune.retrain=false'],
    )
    try:
        from tsforge.tune import _with_driver

        running_trial(_with_driver(url), name, proc)
        srv.cleanup()  # PostgreSQL shuts down under the running search
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.cleanup()
        shutil.rmtree(d, ignore_errors=True)
    assert proc.returncode != 0
    last = [l for l in out.splitlines() if l.strip()][-1]
    assert last.startswith('tsforge.tune.StudyStorageError: '), out[-3000:]
    msg = last[len('tsforge.tune.StudyStorageError: ') :]
    cause = msg.split(' (study storage ')[0]
    assert 'StorageInternalError' not in cause and 'invalid data in the commit' not in cause, msg
    assert any(w in cause.lower() for w in ('shutting down', 'terminating connection', 'connection', 'server')), msg
    assert '(study storage postgresql' in msg
    run = tune_runs(name)[0]
    assert run.info.status == 'FAILED' and run.data.tags['tsforge.error'].startswith(f'StudyStorageError: {cause}')


def test_optuna_db_beside_a_sqlite_tracking_uri(home, tmp_path):
    "With only MLFLOW_TRACKING_URI set (a SQLite file), optuna.db goes beside that file, as the guides say."
    target = tmp_path / 'elsewhere'
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv('TSFORGE_HOME', raising=False)
        mp.delenv('TSFORGE_OPTUNA_STORAGE', raising=False)
        mp.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{target / "mlflow.db"}')
        before = (ROOT / 'mlruns' / 'optuna.db').stat().st_mtime if (ROOT / 'mlruns' / 'optuna.db').exists() else None
        cfg = small('tune.executor=serial', 'tune.n_trials=1', 'tune.retrain=false', 'tune.study_name=beside')
        res = tune(cfg, progress=False)
        assert res.storage == f'sqlite:///{target / "optuna.db"}' and (target / 'optuna.db').is_file()
        after = (ROOT / 'mlruns' / 'optuna.db').stat().st_mtime if (ROOT / 'mlruns' / 'optuna.db').exists() else None
        assert after == before  # the project's own optuna.db is untouched
    from tsforge import store

    store.configure()  # this process back on the module's store


# --- feature sets (issue 14): searched like any key, logged per trial, carried into the bundle ------------------------


@pytest.mark.parametrize(
    'extra, expected',
    [
        (
            ['+tune.space.features.calendar=[[],[hour,hours]]'],
            "tune.space.features.calendar: value ['hour', 'hours'] is not valid for features.calendar",
        ),
        (
            ['+tune.space.features={choices: {none: {}, cal: {calendr: [hour]}}}'],
            "tune.space.features: value {'calendr': ['hour']} is not valid for features: features.calendr: unknown key",
        ),
        (['+tune.space.features.calendar=[[hour],[hour]]'], 'tune.space.features.calendar: choices repeat: [hour]'),
        (
            ['+tune.space.features.future=[[],[OT]]'],
            "tune.space.features.future: choice [OT]: features.future: 'OT' is a target",
        ),
        (
            ['+tune.space.features.future=[[],[HUFL, HULX]]'],
            "tune.space.features.future: choice [HUFL, HULX]: features.future: column 'HULX' is not in the data",
        ),
        (
            ['mode=M', '+tune.space.features.future=[[],[HUFL]]'],
            "tune.space.features.future: in mode M, column(s) ['HUFL'] would be a series in the trials",
        ),
    ],
)
def test_bad_feature_space_names_field_before_any_trial(home, extra, expected):
    before = len(tune_runs())
    with pytest.raises(ConfigError) as e:
        tune(small(*extra, 'tune.executor=serial', 'tune.study_name=badfeat', space=[]), progress=False)
    assert expected in str(e.value), str(e.value)
    assert len(tune_runs()) == before  # nothing was logged, no trial ran
    assert 'badfeat' not in optuna.get_all_study_names(f'sqlite:///{home / "optuna.db"}')


def test_feature_sets_searched_logged_and_registered(home):
    """Named feature sets: each trial's set is a child-run param and tag; the best set is what the registered bundle
    builds."""
    from tsforge.bundle import load_model

    sets = (
        '{choices: {none: {}, hod: {calendar: [hour, dayofweek], cyclic: true}, '
        'hol: {calendar: [hour], future: [HUFL]}}}'
    )
    cfg = small(
        'name=featsearch',
        f'+tune.space.features={sets}',
        'tune.executor=serial',
        'tune.n_trials=4',
        'tune.sampler=random',
        'tune.pruner=none',
        'cv.n_windows=2',
        space=[],
    )
    res = tune(cfg, progress=False)
    trials = res.study.get_trials()
    assert trials[0].params == {'features': 'none'} and trials[0].user_attrs['tsforge.default']  # the experiment's own
    assert {t.params['features'] for t in trials} <= {'none', 'hod', 'hol'}
    assert set(res.trials.features) <= {'none', 'hod', 'hol'}
    want = {
        'none': '{}',
        'hod': '{calendar: [hour, dayofweek], cyclic: true}',
        'hol': '{calendar: [hour], future: [HUFL]}',
    }
    kids = {k.data.params['trial']: k for k in children(res.run_id) if 'trial' in k.data.params}
    for t in trials:
        k = kids[str(t.number)]
        assert k.data.params['features'] == t.params['features']
        assert k.data.tags['tune.features'] == want[t.params['features']]
    best = res.study.best_trial.params['features']
    assert res.best_params['features'] == cfg.tune.space['features'].value(best)
    run = MlflowClient().get_run(res.run_id)
    assert run.data.params['best.features'] == best and run.data.tags['tune.best_features'] == want[best]
    # the retrained, registered model builds the best set's features (so the server does too)
    m = load_model(f'models:/tsforge-featsearch/{res.train.version}', check_requirements=False)
    fs = m.state.feature_state
    expected = res.best_config.features
    if expected.any:
        assert fs.calendar == expected.calendar and fs.future == expected.future and fs.cyclic == expected.cyclic
    else:
        assert fs is None
    assert res.comparison().loc['features', 'best'] == best or res.comparison().loc['features', 'best'] == want[best]


def test_feature_field_choices_decode_and_default(home):
    """Choices of one field (lists): Optuna sees `[hour]`, the trial's config gets ['hour']; the default [] is trial
    0; a column only some sets read is loaded for the search."""
    cfg = small(
        '+tune.space.features.calendar=[[],[hour],[hour,dayofweek]]',
        '+tune.space.features.future=[[],[HUFL]]',
        'data.columns=[OT]',  # HUFL is read for the search only (joined on the time column)
        'tune.executor=serial',
        'tune.n_trials=4',
        'tune.sampler=random',
        'tune.retrain=false',
        'tune.study_name=featfield',
        space=[],
    )
    res = tune(cfg, progress=False)
    t0 = res.study.get_trials()[0]
    assert t0.params == {'features.calendar': '[]', 'features.future': '[]'}
    assert t0.user_attrs['tsforge.default_complete']
    labels = {t.params['features.calendar'] for t in res.study.get_trials()}
    assert labels <= {'[]', '[hour]', '[hour, dayofweek]'}
    assert all(t.state.name == 'COMPLETE' for t in res.study.get_trials())
    assert any(t.params['features.future'] == '[HUFL]' for t in res.study.get_trials())  # the joined column was read
    assert res.best_config.features.calendar == res.best_params['features.calendar']
    assert isinstance(res.best_params['features.calendar'], list)
