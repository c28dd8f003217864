"""Bad configs stop a job at once with one message naming the field, the value and what is allowed."""

import pandas as pd
import pytest

from tsforge.config import ConfigError, load_config
from conftest import papermill


@pytest.mark.parametrize(
    'overrides, expected',
    [
        (['+bogus=1'], 'bogus: unknown key'),
        (['+data.colums=[a]'], 'data.colums: unknown key'),
        (['horizon=abc'], 'horizon: Input should be a valid integer'),
        (['horizon=0'], 'horizon: Input should be greater than or equal to 1 (got 0)'),
        (['input_length=-5'], 'input_length: Input should be greater than or equal to 1'),
        (['model=prophet'], "model: unknown model 'prophet'; allowed: "),
        (['mode=X'], "mode: Input should be 'S', 'M' or 'MS' (got 'X')"),
        (['data.dataset=null', 'data.path=/nope/missing.csv'], "data.path: file not found: '/nope/missing.csv'"),
        (['data.dataset=ETTh9'], "data.dataset: Input should be 'ETTh1' or 'ETTh2' (got 'ETTh9')"),
        (
            ['model=seasonal_naive', '+model_params.period=0'],
            'model_params.period: Input should be greater than or equal to 1',
        ),
        (['model=linear', '+model_params.alpa=1'], 'model_params.alpa: unknown key'),
        (['horizn=5'], "Could not override 'horizn'"),
    ],
)
def test_bad_config_names_field(overrides, expected):
    with pytest.raises(ConfigError) as e:
        load_config('etth1', overrides)
    assert expected in str(e.value)


def test_unknown_experiment_lists_allowed():
    from pathlib import Path

    from tsforge.config import experiments_dir

    names = ', '.join(sorted(p.stem for p in Path(experiments_dir()).glob('*.yaml') if p.stem != 'base'))
    with pytest.raises(ConfigError) as e:
        load_config('etth3')
    assert f"unknown experiment 'etth3'; allowed: {names} or a path to a YAML file" in str(e.value)
    assert 'etth1, ' in str(e.value) and 'etth2_tune' in str(e.value)


def test_user_yaml_anywhere(tmp_path):
    csv = tmp_path / 'sales.csv'
    csv.write_text('day,sales\n' + '\n'.join(f'2024-01-{d:02d},{d}' for d in range(1, 29)))
    f = tmp_path / 'sales.yaml'
    f.write_text(
        f'defaults: [base, _self_]\nname: sales\ndata: {{path: {csv}, time_col: day, target: sales}}\n'
        'split: {kind: ratio, train: 0.6, val: 0.2}\ninput_length: 3\nhorizon: 2\nmodel: naive\n'
    )
    cfg = load_config(str(f))
    assert cfg.name == 'sales' and cfg.registry.model_name == 'tsforge-sales' and cfg.data.freq is None


def test_bad_yaml_file(tmp_path):
    f = tmp_path / 'broken.yaml'
    f.write_text('name: [unclosed\n')
    with pytest.raises(ConfigError, match='broken'):
        load_config(str(f))


@pytest.mark.slow
def test_job_with_bad_config_fails_with_message(store, tmp_path):
    r = papermill('train.ipynb', tmp_path / 'out.ipynb', 'etth1', ['horizon=0'])
    assert r.returncode != 0
    assert 'ConfigError' in r.stderr and 'horizon: Input should be greater than or equal to 1' in r.stderr


# --- names MLflow or Optuna would refuse later, and secrets from the environment (issue 16) ---


@pytest.mark.parametrize(
    'override, expected',
    [
        ('registry.model_name="../evil name/x"', "registry.model_name: '../evil name/x' contains '/'"),
        ("registry.model_name='  my model .. '", "registry.model_name: '  my model .. ' has leading or trailing"),
        ('registry.model_name="a:b"', "contains ':'"),
        ('registry.model_name="50%"', "contains '%'"),
        ('registry.model_name="..x"', 'reads as a relative path'),
        ('registry.model_name=' + 'm' * 257, '257 characters; at most 256'),
        ("tracking.experiment='exp '", "tracking.experiment: 'exp ' has leading or trailing whitespace"),
        ("tune.study_name=' study'", "tune.study_name: ' study' has leading or trailing whitespace"),
        ("name='etth1 '", "name: 'etth1 ' has leading or trailing whitespace"),
        ('name=a/b', "name: 'a/b' contains '/'"),
        ('registry.alias=latest', "registry.alias: 'latest': an alias is 1 to 255 letters"),
        ('registry.alias=v2', 'MLflow reserves them'),
    ],
)
def test_names_refused_at_validation(override, expected):
    with pytest.raises(ConfigError) as e:
        load_config('etth1', [override])
    assert expected in str(e.value), str(e.value)


SECRET = 'hunter2-not-for-mlflow'


@pytest.fixture
def secret_env(monkeypatch, tmp_path):
    csv = tmp_path / f'{SECRET}.csv'
    csv.write_text('ts,y\n' + '\n'.join(f'2024-01-{d:02d},{d}' for d in range(1, 29)))
    monkeypatch.setenv('SOME_SECRET', SECRET)
    monkeypatch.setenv('DATA_FILE', str(csv))
    return csv


@pytest.mark.parametrize(
    'overrides',
    [
        ['name=${oc.env:SOME_SECRET}'],
        ['registry.model_name=${oc.env:SOME_SECRET}'],
        ["tune.study_name='${oc.decode:${oc.env:SOME_SECRET}}'"],
        ['data.dataset=null', 'data.path=${oc.env:DATA_FILE}', 'tracking.experiment=exp-${data.path}'],
    ],
)
def test_names_from_the_environment_are_refused(secret_env, overrides):
    with pytest.raises(ConfigError) as e:
        load_config('etth1', overrides)
    msg = str(e.value)
    assert 'comes from the environment' in msg and 'names are public' in msg and SECRET not in msg, msg


def test_values_from_the_environment_are_redacted(secret_env):
    from tsforge.config import EnvSecrets, validate_config

    over = [
        'data.dataset=null',
        'data.path=${oc.env:DATA_FILE}',
        'data.time_col=ts',
        'data.target=y',
        "tune.storage='${oc.decode:${oc.env:SOME_SECRET}}'",
    ]
    cfg = load_config('etth1', over)
    assert cfg.data.path == str(secret_env) and cfg.tune.storage == SECRET  # the job sees the real values
    assert cfg.secrets.paths == ['data.path', 'tune.storage']
    assert set(cfg.secrets.secret_values) == {str(secret_env), SECRET}
    red = cfg.redacted()
    assert (
        red['data']['path'] == '${oc.env:DATA_FILE}' and red['tune']['storage'] == '${oc.decode:${oc.env:SOME_SECRET}}'
    )
    for text in (cfg.to_yaml(), str(cfg.flat()), str(red)):
        assert SECRET not in text and str(secret_env) not in text
    assert cfg.flat()['data.path'] == '${oc.env:DATA_FILE}'
    assert cfg.secrets.scrub(f'reading {secret_env} with {SECRET}') == (
        'reading ${oc.env:DATA_FILE} with ${oc.env:SOME_SECRET}'
    )
    # a worker process rebuilds the config from a plain dict: the secrets travel beside it
    again = validate_config(cfg.model_dump(mode='json'), EnvSecrets(**cfg.secrets.to_dict()))
    assert again.redacted() == red and validate_config(cfg.model_dump(mode='json')).secrets.paths == []


def test_config_error_messages_are_scrubbed(secret_env, monkeypatch):
    monkeypatch.setenv('DATA_FILE', str(secret_env.with_name(f'{SECRET}-missing.csv')))
    with pytest.raises(ConfigError) as e:
        load_config('etth1', ['data.dataset=null', 'data.path=${oc.env:DATA_FILE}'])
    assert 'data.path: file not found' in str(e.value) and SECRET not in str(e.value)
    assert '${oc.env:DATA_FILE}' in str(e.value)


def test_unknown_resolvers_are_refused():
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver('my_secret_reader', lambda: 'x')
    try:
        with pytest.raises(ConfigError, match="data.sha256: resolver 'my_secret_reader' is not allowed"):
            load_config('etth1', ['data.sha256=${my_secret_reader:}'])
    finally:
        OmegaConf.clear_resolver('my_secret_reader')


def test_plain_config_has_no_secrets():
    cfg = load_config('etth1')
    assert not cfg.secrets and cfg.redacted() == cfg.model_dump(mode='json') and cfg.to_yaml() == cfg.to_yaml(False)


# --- split dates, model parameters and other values that were guessed or ignored ---


@pytest.mark.parametrize(
    'overrides, expected',
    [
        (
            ['split.kind=date', "split.val_start='01/02/2017'", 'split.test_start=2017-03-01'],
            "split.val_start: '01/02/2017' is not an ISO 8601 timestamp",
        ),
        (
            ['split.kind=date', 'split.val_start=2017-02-01', "split.test_start='2017-02-30'"],
            "split.test_start: '2017-02-30' is not a valid date",
        ),
        (['split.kind=ratio', 'split.val_start=2017-02-01'], 'split.val_start is set but split.kind is ratio'),
        (['split.test_start=2017-02-01'], 'split.test_start is set but split.kind is auto'),
        (['model=linear', '+model_params.alpha=abc'], "model_params.alpha: 'abc' is not a penalty"),
        (['model=linear', '+model_params.alpha=-1'], 'model_params.alpha: -1.0 is not a penalty'),
        (['model=linear', '+model_params.alphas=[]'], 'model_params.alphas: []: give the penalties to choose from'),
        (['model=linear', '+model_params.alphas=[0.0]'], 'model_params.alphas: 0.0 is not a penalty'),  # NaN forecasts
        (['model=linear', '+model_params.alphas=[1,-2]'], 'model_params.alphas: -2 is not a penalty'),
        (['+model_params.alpha=0.5', '+model_params.alphas=[1,2]'], 'alphas=[1.0, 2.0] is set but alpha=0.5 is fixed'),
        (['data.columns=[]'], 'data.columns: an empty list reads no column; use null for every numeric column'),
        (
            ['intervals.levels=[0.8, 0.95]'],
            'intervals.levels: levels are percentages: 0.8 is a 0.8% band (did you mean 80?)',
        ),
        (['data.target=[date]'], "data.target: 'date' is the time or id column (data.time_col), not a series"),
        (['data.columns=[OT, date]'], "data.columns: 'date' is the time or id column (data.time_col)"),
        (['horizon=true'], 'horizon: Input should be a number, not true (a boolean is not read as 1 or 0)'),
        (['data.max_repair_share=true'], 'data.max_repair_share: Input should be a number, not true'),
        (['registry.enabled=1'], 'registry.enabled: Input should be true or false, not 1'),
        (['registry.enabled=yes'], "registry.enabled: Input should be true or false, not 'yes'"),
        (['data.dayfirst=0'], 'data.dayfirst: Input should be true or false, not 0'),
        (['intervals.levels=[80, true]'], 'intervals.levels: Item 1 should be a number, not true'),
        (['model=lightgbm', '+model_params.n_estimators=true'], 'model_params.n_estimators: Input should be a number'),
        (['model=dlinear', '+model_params.lr=false'], 'model_params.lr: Input should be a number, not false'),
        (['data.dataset=null', 'data.path=sales.csv'], "invalid config: data.path: file not found: 'sales.csv'"),
        (['registry.metric=test_MSE'], "registry.metric: 'test_MSE' is not a metric the train job logs; did you mean"),
        (['registry.metric=test_99_msis'], "registry.metric: 'test_99_msis' is not a metric"),  # 99 is not a level
        (['data.target=[OT,OT]'], "data.target: listed twice: ['OT']"),
        (['mode=M', 'data.columns=[HUFL,OT,HUFL]'], "data.columns: listed twice: ['HUFL']"),
        (['data.freq=0h'], "data.freq: '0h' does not step forward; a frequency is a positive step"),
        (['data.freq=-1h'], "data.freq: '-1h' does not step forward"),
        (['data.freq=hourly'], "data.freq: 'hourly' is not a pandas frequency alias"),
        (['split.train=0.5'], 'split.train is set but the split is ett'),  # auto resolves to ett for ETTh1
        (
            ['split.kind=date', 'split.val_start=2017-02-01', 'split.test_start=2017-03-01', 'split.val=0.2'],
            'split.val is set but the split is date',
        ),
        (['data.id_col=series'], "data.id_col='series' is set but data.format is wide"),
        (['model=naive', '+features.calendar=[hour]'], 'features: model naive ignores the features section'),
        (['+features.cyclic=true', '+features.calendar=[weekend]'], 'features.cyclic: true encodes periodic calendar'),
        (['intervals.levels=[]', 'intervals.method=cqr'], 'intervals.method=cqr is set but intervals.levels is []'),
        (['intervals.levels=[]', 'intervals.source=cv'], 'intervals.source=cv is set but intervals.levels is []'),
        (['seed=-5'], 'seed: Input should be greater than or equal to 0'),  # numpy's SeedSequence failed at fit
        (['tune.seed=4294967296'], 'tune.seed: Input should be less than or equal to 4294967295'),
        (['tune.storage=sqlite:///:memory:'], 'an in-memory SQLite database is private to each connection'),
        (['tune.grace_period=2', 'tune.heartbeat_interval=10'], 'tune.grace_period=2 must exceed tune.heartbeat'),
        (['data.sha256=abc'], "data.sha256: 'abc' is not a sha256 checksum (64 hexadecimal digits"),
        (['data.max_repair_share=0.5'], 'data.max_repair_share=0.5 is set but data.on_issue is fail'),
        (['split.kind=ratio', 'split.val=0'], 'split.val: Input should be greater than 0'),
        (['registry.enabled=false', 'registry.promote=always'], 'registry.promote=always is set but registry.enabled'),
        (['mode=M', 'data.columns=[HUFL,OT]', '+features.future=[HUFL]'], "data.columns: 'HUFL' is also in features"),
        (['model=patchtst', '+model_params.stride=24'], 'stride=24 exceeds patch_len=16: the 8 rows between'),
        (['model=tft', '+model_params.quantiles=[0.1,0.1,0.9]'], 'model_params.quantiles: listed twice: [0.1]'),
        (['model=tft', '+model_params.n_heads=32'], 'n_heads=32 exceeds d_model=16'),
        (['model=dlinear', 'input_length=24'], 'model_params.kernel_size=25 exceeds input_length=24'),
        # model parameters that were dropped, clamped or ignored, or failed only at fit
        (['model=seasonal_naive', 'input_length=12'], 'model_params.period=24 must be <= input_length=12'),
        (
            ['model=lightgbm', 'input_length=96', '+model_params.features.lags=[2,168]'],
            'lags: [168] exceed input_length',
        ),
        (['model=lightgbm', '+model_params.features.lags=[1,2]'], '1 is the last value itself'),
        (['model=lightgbm', '+model_params.features.rolling=[24,24]'], 'features.rolling: listed twice: [24]'),
        (['model=lightgbm', 'input_length=12', '+model_params.features.season=168'], 'season=168 exceeds input_length'),
        (['model=lightgbm', '+model_params.base=none', '+model_params.folds=3'], 'folds=3 is set but base is none'),
        (
            ['model=lightgbm', '+model_params.base=none', '+model_params.linear.alpha=1'],
            'linear is set but base is none',
        ),
        (['model=fits', 'input_length=96', '+model_params.cut_freq=60'], 'cut_freq=60 exceeds the 49 frequencies'),
        (
            ['model=fits', '+model_params.cut_freq=20', '+model_params.period=12'],
            'period=12 is set but cut_freq=20 is given',
        ),
        (['model=segrnn', 'input_length=100'], 'input_length=100 is not a whole number of model_params.seg_len=24'),
        (['model=sparsetsf', 'input_length=100'], 'input_length=100 is not a whole number of model_params.period=24'),
        (['model=cyclenet', '+model_params.d_model=64'], 'd_model=64 is set but backbone is linear'),
        (['model=patchtst', '+model_params.d_model=18'], 'd_model=18 is not a multiple of n_heads=4'),
        (
            [
                'model=ensemble',
                '+model_params.members=[segrnn,linear]',
                '+model_params.member_params={segrnn: {seg_len: 25}}',
            ],
            'model_params.members.0.model_params.seg_len=25',
        ),
        # cross reads the other series: none in S / MS mode, and at most the window's rows
        (['model=linear', '+model_params.cross=24'], 'model_params.cross=24 reads the other series, but this model'),
        (['model=linear', 'mode=MS', '+model_params.cross=24'], 'cross=24 reads the other series'),
        (['model=lightgbm', '+model_params.linear.cross=24'], 'model_params.linear.cross=24 reads the other series'),
        (  # 7·6·200 inputs per series with shared weights: more than the ridge holds
            ['model=linear', 'mode=M', 'data.columns=[HUFL,HULL,MUFL,MULL,LUFL,LULL,OT]', '+model_params.cross=200'],
            'model_params.cross=200 with 7 series adds C·(C-1)·cross = 7·6·200 = 8,400 inputs per series, more than',
        ),
        (
            ['model=lightgbm', '+model_params.features.cross=true'],
            'model_params.features.cross=true reads the other forecast series',
        ),
        (
            ['model=ensemble', '+model_params.members=[{model: linear, model_params: {cross: 4}}]'],
            'model_params.members.0.model_params.cross=4 reads the other series',
        ),
        (
            ['model=linear', 'mode=M', 'input_length=24', '+model_params.cross=48'],
            'cross=48 must be <= input_length=24',
        ),
    ],
)
def test_values_once_guessed_or_ignored_are_refused(overrides, expected):
    with pytest.raises(ConfigError) as e:
        load_config('etth1', overrides)
    assert expected in str(e.value), str(e.value)


@pytest.mark.parametrize(
    'start', ['2017-02-01', "'2017-02-01 00:00'", "'2017-02-01T00:00:00+01:00'", "'2017-02-01T00:00Z'"]
)
def test_iso_split_dates_are_accepted(start):
    cfg = load_config('etth1', ['split.kind=date', f'split.val_start={start}', 'split.test_start=2017-06-01'])
    assert cfg.split.val_start.startswith('2017-02-01')


def test_accepted_gate_metrics_and_shares():
    cfg = load_config('etth1', ['registry.metric=test_80_winkler'])
    assert cfg.registry.metric == 'test_80_winkler' and cfg.split.shares == (0.7, 0.1)
    assert load_config('etth1', ['split.kind=ratio', 'split.train=0.6']).split.shares == (0.6, 0.1)


def test_linear_alpha_auto_or_positive():
    assert load_config('etth1', ['model=linear', '+model_params.alpha=0.5']).model_params['alpha'] == 0.5
    assert load_config('etth1', ['model=linear', '+model_params.alpha=auto']).model_params['alpha'] == 'auto'
    assert load_config('etth1', ['+model_params.alphas=[0.1, 1]']).model_params['alphas'] == [0.1, 1.0]
    assert load_config('etth1', ['model=lightgbm', 'input_length=96']).model_params['features']['lags'][-1] == 168
    assert load_config('etth1', ['model=lightgbm', '+model_params.base=none']).model_params['base'] == 'none'
    assert load_config('etth1', ['data.sha256=' + 'AB' * 32]).data.sha256 == 'ab' * 32  # compared in lower case
    assert load_config('etth1', ['model=cyclenet', '+model_params.backbone=mlp', '+model_params.d_model=64'])


def test_split_dates_and_time_zones(tmp_path):
    from tsforge.data import load_frame
    from tsforge.split import split_borders

    csv = tmp_path / 'tz.csv'
    csv.write_text('ts,y\n' + '\n'.join(f'2024-01-{d:02d}T00:00+01:00,{d}' for d in range(1, 29)) + '\n')
    f = tmp_path / 'tz.yaml'
    f.write_text(
        f'defaults: [base, _self_]\nname: tz\ndata: {{path: {csv}, time_col: ts, target: y}}\ninput_length: 2\n'
        'horizon: 1\nmodel: naive\nsplit: {kind: date, val_start: 2024-01-15, test_start: 2024-01-22}\n'
    )
    cfg = load_config(str(f))
    times = load_frame(cfg.data)[0].ts
    with pytest.raises(ConfigError) as e:
        split_borders(cfg.split, times)
    msg = str(e.value)
    assert "split.val_start: '2024-01-15' has no UTC offset, but the data's timestamps carry an offset" in msg, msg
    assert "e.g. '2024-01-15 00:00:00+01:00'" in msg
    aware = load_config(
        str(f), ["split.val_start='2024-01-15 00:00+01:00'", "split.test_start='2024-01-22T00:00+01:00'"]
    )
    b = split_borders(aware.split, times)
    assert (b.train_end, b.val_end) == (14, 21)
    from tsforge.prepare import panel_borders  # long format: the same rule

    frame = pd.DataFrame({'id': pd.Categorical(['a'] * len(times)), 'ts': times})
    with pytest.raises(ConfigError, match="split.val_start: '2024-01-15' has no UTC offset"):
        panel_borders(cfg.split, frame, 'ts', 'id')
    assert panel_borders(aware.split, frame, 'ts', 'id')[1]['train_end'].tolist() == [14]
    # a date between two rows of a series it falls within is refused, never rounded; a series that ends before it
    # (or starts after it) has nothing to round
    days = pd.date_range('2024-01-01', periods=28, freq='D', tz='+01:00')
    panel = pd.DataFrame(
        {'id': ['a'] * 28 + ['b'] * 28 + ['c'] * 5, 'ts': [*days, *(days + pd.Timedelta('12h')), *days[:5]]}
    )
    with pytest.raises(ConfigError) as e:
        panel_borders(aware.split, panel, 'ts', 'id')
    assert str(e.value) == (
        "split.val_start: '2024-01-15 00:00+01:00' is not on series 'b''s grid: it falls between its rows at "
        '2024-01-14 12:00:00+01:00 and 2024-01-15 12:00:00+01:00; tsforge does not round a split date: write a '
        'timestamp every series it falls within has'
    ), str(e.value)
    b = panel_borders(aware.split, panel[panel.id != 'b'].reset_index(drop=True), 'ts', 'id')[1]
    assert b['train_end'].tolist() == [14, 5] and b['val_end'].tolist() == [21, 5]


def test_literal_passwords_in_urls_are_refused(monkeypatch):
    url = 'postgresql://optuna:literalpw123@127.0.0.1:1/optuna'
    with pytest.raises(ConfigError) as e:
        load_config('etth1', [f"tune.storage='{url}'"])
    msg = str(e.value)
    assert "tune.storage: the URL 'postgresql://optuna:***@127.0.0.1:1/optuna' holds a password" in msg, msg
    assert "tune.storage='${oc.env:VAR}'" in msg and 'TSFORGE_OPTUNA_STORAGE' in msg and 'literalpw123' not in msg
    with pytest.raises(ConfigError, match=r"data.sha256: the URL 'https://u:\*\*\*@host/x' holds a password"):
        load_config('etth1', ["data.sha256='https://u:pw@host/x'"])  # any string value, not only tune.storage
    monkeypatch.setenv('OPTUNA_DB', url)  # from the environment: allowed, and redacted in what is logged
    cfg = load_config('etth1', ["tune.storage='${oc.env:OPTUNA_DB}'"])
    assert cfg.tune.storage == url and 'literalpw123' not in cfg.to_yaml() + str(cfg.flat())
    for ok in (
        'postgresql://optuna@db/optuna',
        'postgresql://postgres:@/db?host=/var/run/postgresql',
        'sqlite:///optuna.db',
    ):
        assert load_config('etth1', [f"tune.storage='{ok}'"]).tune.storage == ok  # no password written
