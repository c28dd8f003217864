"""Prediction intervals side by side: tsforge's conformal bands, a Gaussian baseline and mlforecast's conformal
intervals, scored on the same ETT S test windows.

    python bench/intervals.py                                         # ETTh1/ETTh2 S, 96/192/336/720, linear+lightgbm
    python bench/intervals.py --horizons 96 336 --peer-python PEERS_VENV/bin/python

tsforge: the experiment's model fitted on the train rows with model selection / early stopping on the first part of
validation, calibrated (per step, split conformal, rank ceil((n+1)(1-alpha))) on the last third of the validation
windows (`intervals.holdout`), never on test. Gaussian: the same point forecasts and the same calibration errors, with
a per-step sigma (root mean square error) and normal quantiles. tsforge conformal, scale input: the same calibration
errors normalised by each window's input scale (`intervals.scale: input`, `tsforge.intervals.input_scale`), the bands
multiplied back by each test window's own (when the experiment is normalised already, its own bands). mlforecast
(optional, `--peer-python`, its own venv: bench/peers/requirements.txt): the same model family (sklearn
LinearRegression / LGBMRegressor on lags 1-24, 48, ..., 168, 336, recursive), fitted on rows [0, 11520) with
PredictionIntervals(n_windows=10, h=H) and the methods conformal_distribution and conformal_error
(bench/peers/mlforecast_intervals.py). tsforge ACI (`--aci GAMMA`, default 0.005; 0 leaves it out): the same model and
calibration served online over the test part one hour at a time, each actual posted back as it arrives and each step's
level moved by adaptive conformal inference (`tsforge.adaptive.Adaptive`, the server's own code), from the plain and
from the normalised bands; it uses the test actuals as a deployed server would, after the forecasts they score were
issued.

Scored on the test origins every `--every` rows (so the peer's per-origin predict stays affordable; every method on
the same windows), in original units: coverage at 80% and 95% (with the block-bootstrap 95% interval), mean width,
MSIS (seasonal period 24, scale from the train rows) and worst-step coverage; tsforge's coverage over every stride-1
test window is shown too. Prints a markdown table (and writes it to --out), headed by the command that made it.
"""

import argparse, json, subprocess, sys, time
from pathlib import Path

import numpy as np
from scipy.stats import norm

from report import Report  # bench/report.py: the command line and the table

HORIZONS = [96, 192, 336, 720]
LEVELS = [80, 95]
MODEL_EXTRA = {'tft': ['+model_params.quantiles=[0.025,0.1,0.5,0.9,0.975]']}  # a quantile pair for 80 and for 95


def gaussian_bands(pred, cal_err, levels):
    "Bands (n, H, K, C) scaled: pred +- z * per-step RMSE of the calibration errors."
    sigma = np.sqrt((cal_err**2).mean(axis=0))  # (H, C)
    z = np.array([norm.ppf(0.5 + lv / 200) for lv in levels])[None, None, :, None]
    p = pred[:, :, None, :]
    return p - z * sigma[None, :, None, :], p + z * sigma[None, :, None, :]


def aci_bands(ev, gamma, test, cal):
    """Bands (n, H, K, C) scaled of the test windows as an adaptive server issues them from `cal`: hour by hour,
    actuals fed back."""
    from tsforge.adaptive import Adaptive

    P, Y, O = ev.test_pred, ev.test_true, ev.test_origins  # stride 1, in time order
    sc = cal.window_scale(test)  # scale input: each window's input scale (else None)
    ad = Adaptive(cal, 'aci', gamma=gamma)
    los, his = [], []
    for i, o in enumerate(O.tolist()):
        if i:
            ad.feedback([''], [o - 1], Y[i - 1, :1])  # the actual at o - 1 arrives
        lo, hi = ad.calibration().bands(P[i : i + 1], None, None if sc is None else sc[i : i + 1])
        ad.issue('', o - 1, o + np.arange(P.shape[1]), lo[0], hi[0])
        los.append(lo[0])
        his.append(hi[0])
    return np.stack(los), np.stack(his)


def fit_and_calibration_windows(ds, H, model, overrides=()):
    """The experiment's model fitted as the train job fits it (ETT S), and its calibration windows (the last
    `intervals.holdout` of validation) with the model's forecasts of them: (cfg, prep, ev, cw, cp)."""
    from tsforge.config import load_config
    from tsforge.intervals import holdout_split
    from tsforge.prepare import prepare
    from tsforge.train import evaluate, fit_evaluate

    cfg = load_config(ds.lower(), [f'model={model}', f'horizon={H}', 'mode=S', *MODEL_EXTRA.get(model, []), *overrides])
    prep = prepare(cfg)
    ev = fit_evaluate(cfg, prep)
    val = prep.windows('val')
    _, cal = holdout_split(val.origins, H, cfg.intervals.holdout)
    cw = val.subset(cal)
    _, cp = evaluate(ev.model, cw, keep=True)
    return cfg, prep, ev, cw, cp


def run_cell(ds, H, model, overrides, every, peer_python, n_windows, aci=0.005):
    from tsforge.data import ett_path
    from tsforge.intervals import (
        band_forecast,
        calibrate,
        cqr_pairs,
        input_scale,
        interval_scores,
        msis_scale,
        seasonal_period,
    )
    from tsforge.intervals import model_quantiles
    from tsforge.train import _unscale_bands

    t0 = time.perf_counter()
    cfg, prep, ev, cw, cp = fit_and_calibration_windows(ds, H, model, overrides)
    st = prep.state
    test = prep.windows('test')
    cal_err = cw.Y - cp
    scale = msis_scale(prep.frame[st.columns_out].to_numpy()[: prep.borders.train_end], seasonal_period(st.freq))
    y_all = st.inverse_transform(test.Y)
    pick = np.arange(0, len(test), every)
    y = y_all[pick]
    # the same errors normalised by each window's input scale (intervals.scale=input), beside the plain bands
    cal, tag = ev.calibration, ''
    if cal.scale == 'none' and cal.method != 'cqr':
        ncal = calibrate(cp, cw.Y, cal.levels, cal.method, scale=input_scale(cw))
    else:  # the experiment is normalised already: its bands are the normalised row
        ncal, tag = cal, ', scale input'
    methods = {f'tsforge conformal{tag}': ev.test_bands}
    if ncal is not cal:
        methods['tsforge conformal, scale input'] = ncal.bands(ev.test_pred, None, ncal.window_scale(test))
    methods['Gaussian'] = gaussian_bands(ev.test_pred, cal_err, cal.levels)
    if aci:
        methods[f'tsforge ACI (online, gamma {aci:g}){tag}'] = aci_bands(ev, aci, test, cal)
        if ncal is not cal:
            methods[f'tsforge ACI (online, gamma {aci:g}), scale input'] = aci_bands(ev, aci, test, ncal)
    qs = model_quantiles(ev.model)
    if qs:  # the model's own quantile band, and CQR on the same held-out windows (the same fitted model)
        tq = band_forecast(ev.model, test, 'cqr')
        pairs = cqr_pairs(qs, ev.calibration.levels)
        methods[f'{model} quantiles'] = tuple(np.stack([tq[..., p[k]] for p in pairs], axis=2) for k in (0, 1))
        cq = calibrate(band_forecast(ev.model, cw, 'cqr'), cw.Y, ev.calibration.levels, 'cqr', quantiles=qs)
        methods['tsforge cqr'] = cq.bands(tq)
    blk = -(-H // every)  # scored windows `every` rows apart overlap for H rows: bootstrap blocks of that many windows
    out = {'windows': len(pick), 'calibration_windows': ev.calibration.n, 'tsforge_fit_s': time.perf_counter() - t0}
    for name, (lo, hi) in methods.items():
        lo, hi = _unscale_bands(st, lo), _unscale_bands(st, hi)
        r = {}
        for j, lv in enumerate(ev.calibration.levels):
            r[lv] = interval_scores(y, lo[pick, :, j], hi[pick, :, j], lv, scale=scale, block=blk)
            if name.startswith('tsforge conformal') or name.startswith('tsforge ACI'):
                r[lv]['coverage_all'] = interval_scores(y_all, lo[:, :, j], hi[:, :, j], lv)['coverage']
        r['mse'] = float(((test.Y[pick] - ev.test_pred[pick]) ** 2).mean())  # scaled, on the scored windows
        out[name] = r
    if peer_python:
        job = {
            'csv': str(ett_path(cfg.data.dataset)),
            'horizon': H,
            'levels': LEVELS,
            'model': model,
            'methods': ['conformal_distribution', 'conformal_error'],
            'val_end': int(prep.borders.val_end),
            'origins': test.origins[pick].tolist(),
            'history': 1000,
            'n_windows': n_windows,
        }
        t1 = time.perf_counter()
        peer = Path(__file__).parent / 'peers' / 'mlforecast_intervals.py'
        r = subprocess.run([peer_python, str(peer)], input=json.dumps(job), capture_output=True, text=True)
        if r.returncode != 0:
            out['peer_error'] = r.stderr[-800:]
        else:
            res = json.loads(r.stdout)
            for meth, rows in res.items():
                pr = np.array([row['pred'] for row in rows])[:, :, None]
                sc = {'mse': float(((st.transform(pr) - test.Y[pick]) ** 2).mean())}
                for lv in LEVELS:
                    lo = np.array([row[f'lo_{lv}'] for row in rows])[:, :, None]
                    hi = np.array([row[f'hi_{lv}'] for row in rows])[:, :, None]
                    sc[float(lv)] = interval_scores(y, lo, hi, lv, scale=scale, block=blk)
                out[f'mlforecast {meth}'] = sc
        out['peer_s'] = time.perf_counter() - t1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--datasets', nargs='+', default=['ETTh1', 'ETTh2'])
    ap.add_argument('--horizons', nargs='+', type=int, default=HORIZONS)
    ap.add_argument('--models', nargs='+', default=['linear', 'lightgbm'])
    ap.add_argument('--set', nargs='*', default=[], metavar='OVERRIDE', help='Hydra overrides applied to every cell')
    ap.add_argument('--every', type=int, default=24, help='score the test origins every N rows')
    ap.add_argument('--peer-python', default=None, help="the peers' venv python (mlforecast); omitted: no peer rows")
    ap.add_argument('--n-windows', type=int, default=10, help="mlforecast's PredictionIntervals(n_windows)")
    ap.add_argument('--aci', type=float, default=0.005, help='gamma of the online ACI row (0: no ACI row)')
    ap.add_argument('--out', default='bench/results/intervals.md')
    a = ap.parse_args()
    args = [x for x in sys.argv[1:]]
    if a.peer_python:  # the command as committed names no machine path
        args[args.index(a.peer_python)] = 'PEERS_VENV/bin/python'
    report = Report('bench/intervals.py', args)
    emit = report.emit
    emit(
        '| dataset | H | model | method | cov 80 [95% CI] | cov 95 [95% CI] | width 80 | width 95 | MSIS 80 | MSIS 95 '
        '| worst-step cov 95 | MSE |'
    )
    emit('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for ds in a.datasets:
        for H in a.horizons:
            for model in a.models:
                r = run_cell(ds, H, model, a.set, a.every, a.peer_python, a.n_windows, a.aci)
                meths = [k for k in r if isinstance(r[k], dict)]
                best = {lv: min(r[m][float(lv)]['msis'] for m in meths) for lv in LEVELS}
                for m in meths:
                    s80, s95 = r[m][80.0], r[m][95.0]
                    ms = lambda s, lv: f'**{s["msis"]:.2f}**' if s['msis'] == best[lv] else f'{s["msis"]:.2f}'
                    cov = lambda s: f'{s["coverage"]:.3f} [{s["coverage_lo"]:.2f}, {s["coverage_hi"]:.2f}]'
                    extra = (
                        f' (all: {s80["coverage_all"]:.3f} / {s95["coverage_all"]:.3f})'
                        if 'coverage_all' in s80
                        else ''
                    )
                    emit(
                        f'| {ds} | {H} | {model} | {m}{extra} | {cov(s80)} | {cov(s95)} | {s80["width"]:.2f} '
                        f'| {s95["width"]:.2f} | {ms(s80, 80)} | {ms(s95, 95)} | {s95["worst_step_coverage"]:.3f} '
                        f'| {r[m]["mse"]:.4f} |'
                    )
                if 'peer_error' in r:
                    emit(f'| {ds} | {H} | {model} | mlforecast failed: {r["peer_error"][-200:]!r} |')
                print(
                    f'  ({r["windows"]} scored windows, {r["calibration_windows"]} calibration windows, '
                    f'tsforge {r["tsforge_fit_s"]:.0f}s, peer {r.get("peer_s", 0):.0f}s)',
                    file=sys.stderr,
                    flush=True,
                )
    report.write(a.out)


if __name__ == '__main__':
    main()
