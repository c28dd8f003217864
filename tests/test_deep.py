"""The torch models (tsforge.deep) on real ETTh1 windows: reproducible for a seed, identical after save/load,
every mode, the training loss option, CycleNet's phase from the timestamps. Small on purpose: L=96, H=24, one epoch,
tiny PatchTST and SegRNN."""

import numpy as np
import pytest
import torch

from tsforge.config import ConfigError, load_config
from tsforge.models import Forecaster
from tsforge.train import fit_evaluate
from tsforge.prepare import prepare

torch.set_num_threads(1)
SMALL = ['input_length=96', 'horizon=24']
TINY_PATCHTST = [
    '+model_params.d_model=8',
    '+model_params.n_heads=2',
    '+model_params.d_ff=32',
    '+model_params.n_layers=1',
]
TINY_SEGRNN = ['+model_params.d_model=16', '+model_params.lr=0.003']


def cfg(model, *extra):
    params = [] if model == 'naive' else ['+model_params.epochs=1', '+model_params.progress=false']
    return load_config(
        'etth1',
        [
            f'model={model}',
            *SMALL,
            *params,
            *(TINY_PATCHTST if model == 'patchtst' else []),
            *(TINY_SEGRNN if model == 'segrnn' else []),
            *extra,
        ],
    )


@pytest.fixture(scope='module')
def prep_s():
    return prepare(cfg('dlinear'))


@pytest.fixture(scope='module')
def prep_m():
    return prepare(cfg('dlinear', 'mode=M'))


def test_same_seed_same_metrics(prep_s):
    a = fit_evaluate(cfg('dlinear', 'seed=7'), prep_s)
    b = fit_evaluate(cfg('dlinear', 'seed=7'), prep_s)
    c = fit_evaluate(cfg('dlinear', 'seed=8'), prep_s)
    assert a.metrics['test_mse'] == b.metrics['test_mse'] and np.array_equal(a.test_pred, b.test_pred)
    assert a.metrics['test_mse'] != c.metrics['test_mse']  # the seed is really used


def test_patchtst_same_seed_same_metrics(prep_s):
    runs = [fit_evaluate(cfg('patchtst', 'seed=3'), prep_s).metrics for _ in range(2)]
    assert runs[0]['test_mse'] == runs[1]['test_mse'] and runs[0]['val_mse'] == runs[1]['val_mse']


def test_dlinear_beats_naive_after_one_epoch(prep_s):
    dl = fit_evaluate(cfg('dlinear'), prep_s).metrics
    naive = fit_evaluate(cfg('naive'), prep_s).metrics
    assert dl['test_windows'] == naive['test_windows'] == 2857
    assert dl['test_mse'] < 0.9 * naive['test_mse'], (dl, naive)


@pytest.mark.parametrize('model', ['dlinear', 'rlinear', 'patchtst', 'fits', 'sparsetsf', 'segrnn', 'cyclenet'])
def test_save_load_round_trip(model, prep_s, tmp_path):
    ev = fit_evaluate(cfg(model), prep_s)
    ev.model.save(tmp_path / 'm')
    assert (tmp_path / 'm' / 'weights.pt').is_file()
    again = Forecaster.load(tmp_path / 'm')
    assert type(again) is type(ev.model) and again.params == ev.model.params
    test = prep_s.windows('test')
    assert np.array_equal(again.predict(test), ev.test_pred)
    assert ev.test_pred.dtype == np.float64


@pytest.mark.parametrize('model', ['dlinear', 'rlinear', 'patchtst', 'fits', 'sparsetsf', 'segrnn', 'cyclenet'])
def test_mode_m(model, prep_m):
    ev = fit_evaluate(cfg(model, 'mode=M'), prep_m)
    assert ev.test_pred.shape == (2857, 24, 7) and np.isfinite(ev.test_pred).all()
    naive = fit_evaluate(cfg('naive', 'mode=M'), prep_m).metrics
    assert ev.metrics['test_mse'] < 0.8 * naive['test_mse'], (ev.metrics, naive)  # naive: 1.22


def test_mode_ms_forecasts_target_only(prep_s):
    ms = fit_evaluate(cfg('dlinear', 'mode=MS'))
    s = fit_evaluate(cfg('dlinear'), prep_s)
    assert ms.test_pred.shape == (2857, 24, 1)
    # channel-independent: the other columns do not change the target's forecast
    assert np.array_equal(ms.test_pred, s.test_pred)


@pytest.mark.parametrize('model', ['fits', 'sparsetsf', 'segrnn', 'cyclenet'])
def test_new_models_same_seed_same_forecasts(model, prep_m):
    a, b = (fit_evaluate(cfg(model, 'mode=M', 'seed=5'), prep_m) for _ in range(2))
    assert np.array_equal(a.test_pred, b.test_pred)


def test_training_loss_option(prep_s):
    # no bands: validation is not split into selection and calibration windows, so val_mse covers the windows the
    # trainer selected its epoch on
    mse = fit_evaluate(cfg('dlinear', 'intervals.levels=[]'), prep_s)
    mae = fit_evaluate(cfg('dlinear', '+model_params.loss=mae', 'intervals.levels=[]'), prep_s)
    assert mse.model.params.loss == 'mse' and mae.model.params.loss == 'mae'
    assert not np.array_equal(mse.test_pred, mae.test_pred)  # the loss is really used
    # the validation loss recorded per epoch stays the MSE: it equals the scored validation MSE of the best epoch
    for ev in (mse, mae):
        assert np.isclose(min(h['val_loss'] for h in ev.model.history_), ev.metrics['val_mse'], rtol=1e-4)
    assert mae.metrics['test_mse'] < 0.9 * fit_evaluate(cfg('naive'), prep_s).metrics['test_mse']


def test_unknown_or_bad_params_are_named():
    with pytest.raises(ConfigError, match='kernal_size'):
        cfg('dlinear', '+model_params.kernal_size=5')
    with pytest.raises(ConfigError, match='device'):
        cfg('patchtst', '+model_params.device=gpu')
    with pytest.raises(ConfigError, match='loss'):
        cfg('fits', '+model_params.loss=l3')
    with pytest.raises(ConfigError, match='cut_freq'):
        cfg('fits', '+model_params.cut_freq=0')
    with pytest.raises(ConfigError, match='rnn'):
        cfg('segrnn', '+model_params.rnn=transformer')
    with pytest.raises(ConfigError, match='backbone'):
        cfg('cyclenet', '+model_params.backbone=transformer')
    with pytest.raises(ConfigError, match='cycle'):
        cfg('cyclenet', '+model_params.cycle=0')


def test_cyclenet_phase_follows_the_timestamps(prep_m):
    "The cycle is read at each window's own hours: the same values an hour later get another forecast."
    ev = fit_evaluate(cfg('cyclenet', 'mode=M'), prep_m)
    test = prep_m.windows('test')
    hours = (test.times.astype('datetime64[h]').astype('int64') - 96) % 24
    assert np.array_equal(ev.model.phase(test), hours.astype(float))  # first input step's hour of the day (UTC)
    assert np.abs(ev.model.module.q.detach().numpy()).max() > 0.01  # the cycle was learned
    one = test.subset([10])
    later = type(one)(one.state, one.scaled, one.row_times + np.timedelta64(1, 'h'), one.origins)
    assert np.abs(ev.model.predict(later) - ev.model.predict(one)).max() > 1e-4
