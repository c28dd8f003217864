"""Memory that follows the data: windows are views of the scaled array, every model works batch by batch, and the
benchmark figures do not move (same numbers as before the change, to 1e-9)."""

import numpy as np
import pytest
import torch

import tsforge.preprocess as pp
from tsforge.request import request_windows
from tsforge.config import load_config
from tsforge.deep import fit_module, DLinearNet
from tsforge.metrics import scores
from tsforge.models import make_model
from tsforge.train import fit_evaluate
from tsforge.prepare import prepare

SMALL = ['input_length=96', 'horizon=24']


@pytest.fixture(scope='module')
def prep_m():
    return prepare(load_config('etth1', ['mode=M', *SMALL]))


def test_windows_are_views(prep_m):
    for part in ('train', 'val', 'test'):
        w = prep_m.windows(part)
        assert np.shares_memory(w.X, prep_m.scaled) and np.shares_memory(w.Y, prep_m.scaled)
        assert w.X.shape == (len(w), 96, 7) and w.Y.shape == (len(w), 24, 7)
    w = prep_m.windows('train')
    o = w.origins[100]
    assert np.array_equal(w.X[100], prep_m.scaled[o - 96 : o]) and np.array_equal(w.Y[100], prep_m.scaled[o : o + 24])
    # a consecutive slice stays a view; an index array copies only the windows asked for
    xs = w.inputs()
    assert np.shares_memory(xs[10:20], prep_m.scaled)
    picked = xs[np.array([5, 3000, 7])]
    assert not np.shares_memory(picked, prep_m.scaled) and picked.shape == (3, 96, 7)
    assert np.array_equal(picked[1], w.X[3000])
    # a request window is a view of the request's own scaled rows, built by the same function
    hist = prep_m.frame.iloc[o - 96 : o]
    rw, _ = request_windows(prep_m.state, hist)
    assert np.allclose(rw.X[0], w.X[100]) and rw.X.base is not None


# figures before windows became views (full precision, from the previous code on the same data)
BEFORE = {
    ('etth1', 'MS', 'linear', 96): 0.05290347015508563,
    ('etth2', 'S', 'linear', 336): 0.19482205439721387,
    ('etth2', 'M', 'naive', 336): 0.5972773239778442,
    ('etth2', 'S', 'seasonal_naive', 192): 0.20183611741858093,
}


@pytest.mark.parametrize('ds,mode,model,h', list(BEFORE))
def test_figures_unchanged(ds, mode, model, h):
    # the protocol's point forecast: no bands (every validation window selects the model, as before intervals)
    m = fit_evaluate(load_config(ds, [f'mode={mode}', f'model={model}', f'horizon={h}', 'intervals.levels=[]'])).metrics
    assert abs(m['test_mse'] - BEFORE[(ds, mode, model, h)]) < 1e-9


@pytest.mark.parametrize(
    'model,params',
    [
        ('linear', {}),
        ('linear', {'individual': True}),
        ('seasonal_naive', {}),
        ('lightgbm', {'n_estimators': 30, 'num_threads': 1, 'max_rows': 20000}),
        ('dlinear', {'epochs': 1, 'progress': False, 'batch_size': 256}),
    ],
)
def test_chunked_equals_unchunked(prep_m, monkeypatch, model, params):
    "Tiny batches (a few windows) and one batch for everything give the same model and forecasts."
    train, val, test = (prep_m.windows(p) for p in ('train', 'val', 'test'))
    out = []
    for chunk in (3 * 96 * 7, 1 << 40):
        monkeypatch.setattr(pp, 'CHUNK_VALUES', chunk)
        m = make_model(model, params, prep_m.state, 0).fit(train, val)
        out.append((m, m.predict(test)))
    (a, pa), (b, pb) = out
    assert np.allclose(pa, pb, rtol=0, atol=1e-9)
    if model == 'linear':
        assert all(np.allclose(x, y, atol=1e-12) for x, y in zip(a.W, b.W)) and a.alpha_ == b.alpha_
    s1, s2 = scores(test.Y, pa, prep_m.state), scores(test.Y, pa, prep_m.state, batch=7)
    assert all(np.isclose(s1[k], s2[k], rtol=1e-12) for k in s1)


def test_lightgbm_samples_windows_when_rows_exceed_max_rows(prep_m):
    "Even one step per window and series is over max_rows: a sample of windows, features and OOF base only for those."
    train, val, test = (prep_m.windows(p) for p in ('train', 'val', 'test'))
    m = make_model('lightgbm', {'n_estimators': 20, 'num_threads': 1, 'max_rows': 7000}, prep_m.state, 0)
    tw, idx = m._pick(train, np.random.default_rng(0))
    assert len(tw) == 1000 and (np.diff(idx) > 0).all()
    m.fit(train, val)
    assert m.booster_.num_trees() >= 1 and np.isfinite(m.predict(test)).all()


def test_trainer_batches_from_window_arrays(prep_m):
    "fit_module gathers each mini-batch from the scaled rows: the same training as from dense copies of all windows."
    train, val = prep_m.windows('train').subset(slice(0, 600)), prep_m.windows('val').subset(slice(0, 200))
    hist = []
    for lazy in (True, False):
        torch.manual_seed(0)
        net = DLinearNet(96, 24, 7)
        X, Y = (train.inputs(), train.targets()) if lazy else (np.array(train.X), np.array(train.Y))
        Xv, Yv = (val.inputs(), val.targets()) if lazy else (np.array(val.X), np.array(val.Y))
        hist.append(fit_module(net, X, Y, Xv, Yv, epochs=2, batch_size=64, progress=False))
    assert [h['train_loss'] for h in hist[0]] == [h['train_loss'] for h in hist[1]]
    assert [h['val_loss'] for h in hist[0]] == [h['val_loss'] for h in hist[1]]
