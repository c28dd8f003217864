"""Every registered model (`tsforge.models.MODELS`, nothing hard-coded here): trained on a small slice of ETTh1 with
tiny settings, logged as the pyfunc bundle and loaded back, and the bundle's forecast from a history equals the
model's own prediction on the same window (1e-6). Registering a model in MODELS is enough for it to be tested here.
The models guide's table (nbs/guides/models.md) and experiments/base.yaml's `model:` comment are checked against
MODELS too."""

import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from tsforge.models import MODELS, model_class

L, H = 48, 12
# small settings by parameter name, so that a new model that reuses these names is fast without being listed here
TINY = {
    'epochs': 1,
    'progress': False,
    'patience': 1,
    'n_estimators': 20,
    'early_stopping_rounds': 5,
    'num_threads': 1,
    'max_rows': 20_000,
}


def tiny_params(name: str) -> dict:
    "The TINY settings a model's Params accept (members of a composite model get theirs too)."
    fields = model_class(name).Params.model_fields
    p = {k: v for k, v in TINY.items() if k in fields}
    if 'members' in fields and 'member_params' in fields:
        p['member_params'] = {m: tiny_params(m) for m in fields['members'].default}
    return p


@pytest.fixture(scope='module')
def slice_csv(tmp_path_factory):
    "The first 2,000 hours of ETTh1, two columns: a small CSV of the user's own."
    from tsforge.data import ett_path

    df = pd.read_csv(ett_path('ETTh1'), nrows=2000)[['date', 'HUFL', 'OT']]
    p = tmp_path_factory.mktemp('data') / 'etth1_slice.csv'
    df.to_csv(p, index=False)
    return p


@pytest.fixture(scope='module')
def own_store(module_store):
    "A throw-away store for this module; the session's store is restored afterwards."
    return module_store


@pytest.mark.parametrize('name', sorted(MODELS))
def test_every_model_trains_round_trips_and_serves_the_same(name, slice_csv, own_store):
    from tsforge import bundle, runs
    from tsforge.config import load_config
    from tsforge.train import fit_evaluate
    from tsforge.prepare import prepare

    params = tiny_params(name)
    cfg = load_config(
        'etth1',
        [
            'data.dataset=null',
            f'data.path={slice_csv}',
            'mode=M',
            f'input_length={L}',
            f'horizon={H}',
            f'model={name}',
            'split.kind=ratio',
            f'registry.model_name=all-{name}',
        ],
    )
    cfg = cfg.model_copy(update={'model_params': params})
    prep = prepare(cfg)
    ev = fit_evaluate(cfg, prep)
    assert np.isfinite(ev.metrics['test_mse']) and ev.test_pred.shape[1:] == (H, 2)
    with runs.start_run(cfg, f'all-models-{name}'):
        info = bundle.log_model(ev.model, cfg, prep.frame.iloc[: prep.borders.train_end])
    bundle = mlflow.pyfunc.load_model(info.model_uri)  # from the store: saved, then loaded from its files
    st, tc = prep.state, cfg.data.time_col
    for i in (0, len(ev.test_origins) // 2, -1):
        o = ev.test_origins[i]
        history = prep.frame.iloc[o - L : o][[tc, *st.columns_in]].copy()
        history[tc] = history[tc].astype(str)
        fc = bundle.predict(history, params={'horizon': H})
        expected = st.inverse_transform(ev.test_pred[i])
        assert np.abs(fc[st.columns_out].to_numpy() - expected).max() < 1e-6, name
        assert pd.to_datetime(fc[tc]).tolist() == list(prep.frame[tc].iloc[o : o + H])


def test_guide_and_base_yaml_list_every_model():
    guide = (ROOT / 'nbs' / 'guides' / 'models.md').read_text()
    section = guide.split('\n## The models\n', 1)[1].split('\n## ', 1)[0]
    table = re.findall(r'^\| `([a-z0-9_]+)` \|', section, flags=re.M)
    assert sorted(table) == sorted(MODELS), (
        'nbs/guides/models.md ## The models: one row per name in tsforge.models.MODELS'
    )
    base = (ROOT / 'experiments' / 'base.yaml').read_text()
    comment = re.search(r'^model: \w+ +# (.*)$', base, flags=re.M).group(1)
    assert sorted(re.findall(r'[a-z][a-z0-9_]+', comment)) == sorted(MODELS), (
        'base.yaml: the model comment lists MODELS'
    )


@pytest.mark.parametrize('name', sorted(p.stem for p in (ROOT / 'experiments').glob('*.yaml') if p.stem != 'base'))
def test_every_experiment_file_loads(name):
    "Each committed experiment (the per-cell ones of bench/tables/ett_m.md too) composes and validates, with params."
    from tsforge.config import load_config

    cfg = load_config(name)
    assert cfg.name and cfg.model in MODELS
    model_class(cfg.model).Params(**cfg.model_params)
