"""The `lightgbm` model on real ETTh1 windows, small and fast: determinism, save/load, M and MS modes, serving
parity."""

import numpy as np
import pytest

from tsforge.config import ConfigError, load_config
from tsforge.models import Forecaster
from tsforge.train import fit_evaluate
from tsforge.prepare import prepare
from tsforge.request import request_windows

SMALL = [
    'model=lightgbm',
    'input_length=96',
    'horizon=24',
    '+model_params.n_estimators=20',
    '+model_params.num_threads=1',
]


@pytest.fixture(scope='module')
def s_run():
    cfg = load_config('etth1', SMALL)
    prep = prepare(cfg)
    return cfg, prep, fit_evaluate(cfg, prep)


def test_same_seed_same_model(s_run):
    cfg, prep, ev = s_run
    again = fit_evaluate(cfg, prep)
    assert again.metrics['test_mse'] == ev.metrics['test_mse']
    assert np.array_equal(again.test_pred, ev.test_pred)
    other = fit_evaluate(load_config('etth1', SMALL + ['seed=1']), prep)
    assert not np.array_equal(other.test_pred, ev.test_pred)  # the seed does reach the booster (bagging, sampling)


def test_forecasts_and_scores(s_run):
    cfg, prep, ev = s_run
    assert ev.test_pred.shape == (2857, 24, 1) and ev.test_pred.dtype == np.float64
    naive = fit_evaluate(load_config('etth1', ['model=naive', 'input_length=96', 'horizon=24']), prep)
    assert ev.metrics['test_mse'] < naive.metrics['test_mse']
    assert ev.model.iterations_ <= 20 and 0 <= ev.model.blend_ <= 1


def test_save_load_round_trip(s_run, tmp_path):
    cfg, prep, ev = s_run
    ev.model.save(tmp_path / 'm')
    assert {'model.json', 'booster.txt', 'gbm.json', 'base'} <= {p.name for p in (tmp_path / 'm').iterdir()}
    loaded = Forecaster.load(tmp_path / 'm')
    assert type(loaded).__name__ == 'LightGBM'
    assert np.array_equal(loaded.predict(prep.windows('test')), ev.test_pred)


def test_one_request_matches_batch(s_run):
    "Serving windows one request's history with the same code; its forecast equals the batch forecast of that origin."
    cfg, prep, ev = s_run
    o = int(ev.test_origins[-1])
    history = prep.frame.iloc[o - 96 : o][['date', 'OT']]
    w, last = request_windows(prep.state, history)
    assert last == prep.frame.date.iloc[o - 1]
    np.testing.assert_allclose(ev.model.predict(w)[0], ev.test_pred[-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize('mode, c_out', [('M', 7), ('MS', 1)])
def test_multivariate_modes(mode, c_out):
    prep = prepare(load_config('etth1', SMALL + [f'mode={mode}']))
    ev = fit_evaluate(prep.cfg, prep)
    assert ev.test_pred.shape == (2857, 24, c_out) and np.isfinite(ev.test_pred).all()
    ridge = ev.model.base_.predict(prep.windows('test'))  # the linear base alone, same windows
    assert ev.metrics['test_mse'] < 1.1 * float(np.mean((ridge - ev.test_true) ** 2))


def test_unknown_param_is_rejected():
    with pytest.raises(ConfigError, match='n_estimator'):
        load_config('etth1', ['model=lightgbm', '+model_params.n_estimator=5'])


def test_per_channel_boosters(tmp_path):
    "`per_channel`: one booster per forecast column, each column's correction its own booster's; saved and served."
    prep = prepare(load_config('etth1', SMALL + ['mode=M', '+model_params.per_channel=true']))
    ev = fit_evaluate(prep.cfg, prep)
    m, test = ev.model, prep.windows('test')
    assert m.booster_ is None and len(m.channels_) == 7 and np.isfinite(ev.test_pred).all()
    assert all(it <= 20 and 0 <= b <= 1 for _, it, b in m.channels_)
    from tsforge.gbm import window_features, window_scale

    w = test.subset(np.arange(3))  # column k's forecast = base + blend_k * booster_k(column k's rows) * scale
    base = m.base_.predict(w)
    F, _ = window_features(w, prep.state, base, m.params.features)
    booster, it, blend = m.channels_[2]
    r = booster.predict(F[np.arange(len(F)) % 7 == 2], num_iteration=it).reshape(3, 24)
    s = window_scale(m._out(w.X), m.params.features)[:, 2]
    np.testing.assert_allclose(m.predict(w)[:, :, 2], base[:, :, 2] + blend * r * s[:, None], rtol=0, atol=1e-12)
    m.save(tmp_path / 'm')
    assert {f'booster_{k}.txt' for k in range(7)} <= {p.name for p in (tmp_path / 'm').iterdir()}
    assert np.array_equal(Forecaster.load(tmp_path / 'm').predict(test), ev.test_pred)
    glob = fit_evaluate(load_config('etth1', SMALL + ['mode=M']), prep)
    assert glob.model.channels_ is None and not np.array_equal(glob.test_pred, ev.test_pred)
