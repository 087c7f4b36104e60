"""
Sunspots: a real series, fitted and forecast, next to statsmodels
=================================================================

The yearly sunspot numbers bundled with statsmodels (1700-2008). A 2-state model has
one damped oscillation: its pair of eigenvalues ``r exp(±iω)`` gives the cycle's period
``2π / ω`` directly. The output of a 2-state linear-Gaussian model is an ARMA(2, 2)
process, so statsmodels' ``SARIMAX(order=(2, 0, 2), trend="c")`` is the same model
class, parametrized differently; fitted by maximum likelihood on the same years, both
should reach the same log-likelihood, the same dynamics (the eigenvalues of ``A`` are the
inverse roots of the AR polynomial) and the same forecasts.

Both are fitted on 1700-1988 and forecast 1989-2008, twenty years ahead.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import statsmodels.api as sm

from skkalman import DynamicsRecovery, KalmanFilterRegressor

y = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
years = np.arange(1700, 1700 + len(y))
n_train = int(np.searchsorted(years, 1989))
train = y[:n_train]

start = time.perf_counter()
model = KalmanFilterRegressor(n_states=2, random_state=0).fit(np.zeros((n_train, 0)), train)
ours_seconds = time.perf_counter() - start

start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # statsmodels' optimizer chatter
    arma = sm.tsa.SARIMAX(train, order=(2, 0, 2), trend="c").fit(disp=False)
arma_seconds = time.perf_counter() - start

eigenvalues = np.linalg.eigvals(model.A_)
inverse_roots = 1 / arma.arroots
for name, ll, eig, seconds in [
        ("skkalman", model.log_likelihood(np.zeros((n_train, 0)), train), eigenvalues,
         ours_seconds),
        ("statsmodels", arma.llf, inverse_roots, arma_seconds)]:
    period = 2 * np.pi / np.abs(np.angle(eig[0]))
    print(f"{name:<12} log-likelihood {ll:.4f}, eigenvalues {np.round(eig, 3)}: "
          f"modulus {abs(eig[0]):.3f}, period {period:.2f} years; fit {seconds:.2f} s")

# %%
# How well do 289 years pin the cycle down? :class:`~skkalman.DynamicsRecovery` gives
# each eigenvalue's covariance (the observed information at the maximum), and
# ``mode_intervals`` carries it to the period and the half-life of the oscillation's
# amplitude, with 95% intervals.
recovery = DynamicsRecovery(model, prefit=True).fit(np.zeros((n_train, 0)), train)
modes = recovery.mode_intervals()
(p_low, p_high), (h_low, h_high) = modes.period_interval[0], modes.half_life_interval[0]
print(f"period {modes.period[0]:.1f} years (95%: {p_low:.1f}-{p_high:.1f}); amplitude "
      f"half-life {modes.half_life[0]:.1f} years ({h_low:.1f}-{h_high:.1f}); "
      f"weakly identified: {bool(recovery.weakly_identified_[0])}")

# %%
# Forecasts: NaN measurements after 1988 let ``forecast`` run on without updates, with
# the standard deviation of each forecast; statsmodels' ``get_forecast`` gives the same.
ahead = len(y) - n_train
y_ext = np.r_[train, np.full(ahead, np.nan)]
mean, std = model.forecast(np.zeros((len(y_ext), 0)), y_ext, return_std=True)
theirs = arma.get_forecast(ahead)
their_mean, their_std = theirs.predicted_mean, np.sqrt(theirs.var_pred_mean)
future = slice(n_train, None)
print(f"largest difference between the two forecasts: "
      f"{np.max(np.abs(mean[future] - their_mean)):.3f} (sunspot numbers)")
for name, pred in [("skkalman", mean[future]), ("statsmodels", their_mean)]:
    rmse = np.sqrt(np.mean((pred - y[future]) ** 2))
    print(f"{name:<12} 1989-2008 forecast RMSE {rmse:.1f}")

fig, ax = plt.subplots(figsize=(10, 4.5))
ax.plot(years, y, "k-", lw=0.8, label="sunspot number")
ax.plot(years[future], mean[future], color="C0", label="skkalman forecast")
ax.fill_between(years[future], mean[future] - 2 * std[future],
                mean[future] + 2 * std[future], color="C0", alpha=0.15)
ax.plot(years[future], their_mean, "--", color="C1", label="statsmodels SARIMAX(2, 0, 2)")
ax.plot(years[future], their_mean + 2 * their_std, ":", color="C1", lw=0.8)
ax.plot(years[future], their_mean - 2 * their_std, ":", color="C1", lw=0.8)
ax.set_xlim(1900, years[-1] + 1)
ax.set_xlabel("year")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()
