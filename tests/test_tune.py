"""The tune job: search-space validation, no test-part leakage, resume to the budget, two workers on one real
PostgreSQL study, a SIGKILLed worker, SIGTERM, the papermill job with the promotion gate, all trials failing, Ray."""

import os, signal, subprocess, sys, time

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import ROOT, free_port, papermill
from tsforge import tracking
from tsforge.config import ConfigError, load_config
from tsforge.tune import tune

SMALL = [
    'input_length=96',
    'horizon=24',
    'cv.n_windows=3',
    'cv.horizon=240',
    'cv.step=240',
    'tune.n_startup_trials=2',
    'tune.pruner_startup_trials=2',
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


def small(*extra, space=SPACE, config='etth1'):
    return load_config(config, SMALL + list(space) + list(extra))


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    "A throw-away store (MLflow + Optuna) for this module; tests keep apart by study and experiment names."
    h = tmp_path_factory.mktemp('tunehome')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('TSFORGE_HOME', str(h))
        mp.delenv('TSFORGE_OPTUNA_STORAGE', raising=False)
        yield h


def tune_runs(study=None):
    "Parent tune runs, newest first (of one study)."
    tracking.configure()
    exp = MlflowClient().get_experiment_by_name('tsforge')
    if exp is None:
        return []
    runs = MlflowClient().search_runs(
        [exp.experiment_id], "tags.`tsforge.job` = 'tune'", order_by=['attribute.start_time DESC']
    )
    return [
        r
        for r in runs
        if 'mlflow.parentRunId' not in r.data.tags and study in (None, r.data.tags.get('tune.study_name'))
    ]


def children(run_id):
    exp = MlflowClient().get_run(run_id).info.experiment_id
    return MlflowClient().search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")


def artifacts(run_id, path=''):
    out = []
    for f in MlflowClient().list_artifacts(run_id, path):
        out += artifacts(run_id, f.path) if f.is_dir else [f.path]
    return out


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
        (['tune.sampler=bayes'], "tune.sampler: Input should be 'tpe', 'random', 'cmaes' or 'gp'"),
        (['tune.n_trials=0'], 'tune.n_trials: Input should be greater than or equal to 1'),
    ],
)
def test_bad_search_space_names_field(extra, expected):
    with pytest.raises(ConfigError) as e:
        small(*extra, space=[])
    assert expected in str(e.value), str(e.value)


def test_empty_space_and_unreachable_storage_fail_at_once(home):
    before = len(tune_runs())
    with pytest.raises(ConfigError, match='tune.space: nothing to search'):
        tune(small(space=[]), progress=False)
    url = f'postgresql://tsforge:s3cret@127.0.0.1:{free_port()}/optuna'
    with pytest.raises(ConfigError) as e:
        tune(small(f'tune.storage={url}'), progress=False)
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


# --- two workers on one real PostgreSQL study -------------------------------------------------------------------------


@pytest.fixture
def postgres(tmp_path):
    pgserver = pytest.importorskip('pgserver')
    import tempfile

    d = tempfile.mkdtemp(prefix='pg', dir='/tmp')  # short: the Unix socket lives in it
    srv = pgserver.get_server(d, cleanup_mode='stop')
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def test_two_local_workers_on_postgres_run_exactly_the_budget(home, postgres):
    cfg = small(
        f"tune.storage='{postgres}'",
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
        [sys.executable, str(script), *overrides],
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


def test_tune_job_papermill_with_gate(home, tmp_path):
    from tsforge.pipeline import train

    weak = train(
        load_config('etth1', ['name=gate', 'model=naive', 'input_length=96', 'horizon=24'])
    )  # the champion to beat
    assert weak.version == '1' and weak.promoted
    overrides = SMALL + [
        'name=gate',
        'tune.n_trials=4',
        'tune.executor=local',
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
    # the same search again: nothing left in the budget, the same best retrained; not better, so the alias stays
    again = tune(load_config('etth1', overrides), progress=False)
    assert len(again.trials) == 4 and again.train.version == '3' and not again.train.promoted
    assert str(MlflowClient().get_model_version_by_alias('tsforge-gate', 'champion').version) == '2'
    assert tune_runs()[0].data.tags['tune.promoted'] == 'false'


def test_all_trials_fail_job_fails_and_moves_no_alias(home):
    from tsforge.pipeline import train

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
