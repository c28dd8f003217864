"""Bad configs stop a job at once with one message naming the field, the value and what is allowed."""

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
    with pytest.raises(
        ConfigError,
        match="unknown experiment 'etth3'; allowed: etth1, etth1_tune, etth1_tune_models, etth2, etth2_tune",
    ):
        load_config('etth3')


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


def test_job_with_bad_config_fails_with_message(store, tmp_path):
    r = papermill('train.ipynb', tmp_path / 'out.ipynb', 'etth1', ['horizon=0'])
    assert r.returncode != 0
    assert 'ConfigError' in r.stderr and 'horizon: Input should be greater than or equal to 1' in r.stderr
