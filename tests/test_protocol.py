"""The ETT protocol facts: window counts and the reference naive figures (DESIGN.md), plus the linear target."""

import numpy as np
import pytest

from tsforge.config import load_config
from tsforge.train import fit_evaluate
from tsforge.prepare import prepare

NAIVE_ETTH1 = {96: (0.069, 0.203), 192: (0.092, 0.236), 336: (0.113, 0.265), 720: (0.129, 0.283)}
SNAIVE_ETTH2 = {96: 0.155, 192: 0.202, 336: 0.261, 720: 0.302}
WINDOWS = {96: 2785, 192: 2689, 336: 2545, 720: 2161}


@pytest.mark.parametrize('h', [96, 192, 336, 720])
def test_naive_reproduces_reference(h):
    m = fit_evaluate(load_config('etth1', ['model=naive', f'horizon={h}'])).metrics
    assert m['test_windows'] == WINDOWS[h]
    assert (round(m['test_mse'], 3), round(m['test_mae'], 3)) == NAIVE_ETTH1[h]


@pytest.mark.parametrize('h', [96, 192, 336, 720])
def test_seasonal_naive_etth2(h):
    m = fit_evaluate(load_config('etth2', ['model=seasonal_naive', f'horizon={h}'])).metrics
    assert round(m['test_mse'], 3) == SNAIVE_ETTH2[h]


def test_linear_target_etth1_96():
    m = fit_evaluate(load_config('etth1', ['model=linear', 'horizon=96', 'input_length=336'])).metrics
    assert m['test_mse'] <= 0.054, m


def test_scaler_sees_train_rows_only():
    prep = prepare(load_config('etth1', ['mode=M']))
    train = prep.frame[prep.state.columns_in].to_numpy()[:8640]
    assert np.allclose(prep.state.mean, train.mean(0)) and np.allclose(prep.state.std, train.std(0, ddof=0))
    assert prep.state.columns_in == ['HUFL', 'HULL', 'MUFL', 'MULL', 'LUFL', 'LULL', 'OT'] == prep.state.columns_out


def test_ms_mode_scores_target_only():
    ev = fit_evaluate(load_config('etth1', ['mode=MS', 'model=naive']))
    assert ev.test_pred.shape == (2785, 96, 1) and round(ev.metrics['test_mse'], 3) == 0.069
