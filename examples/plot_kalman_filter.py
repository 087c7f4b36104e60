"""
Learning a Kalman model, then filtering, smoothing and forecasting
==================================================================

Data from a known 4-state system of two damped rotations, measured through two noisy
outputs with a gap of missing measurements. ``KalmanFilterRegressor`` learns the system
from the measurements alone (subspace identification, then EM), fills the gap by
smoothing, and forecasts past the end of the series by leaving the last rows NaN.
"""

import matplotlib.pyplot as plt
import numpy as np

from skkalman import KalmanFilterRegressor
from skkalman.datasets import make_lds
from skkalman.metrics import eigenvalue_error

X, y, system = make_lds(system="two_rotations", n_samples=3000, random_state=0)
y_missing = y.copy()
y_missing[2400:2440] = np.nan  # a gap: no measurement, the filter skips the update
y_missing[-30:] = np.nan  # the end: forecasts 1 to 30 steps ahead

model = KalmanFilterRegressor(n_states=4, random_state=0).fit(X[:2000], y[:2000])
print(f"EM iterations: {model.n_iter_}, converged: {model.converged_}")
print(f"eigenvalue error of the learned A: {eigenvalue_error(model.A_, system.A):.4f}")

# %%
# Filtering uses the past, smoothing the whole series: the smoother bridges the gap.
# ``forecast`` gives one-step-ahead predictions that turn into multi-step forecasts
# where the measurements stop.
means, covariances = model.smooth(X, y_missing)
smoothed_y = means @ model.C_.T
forecast, std = model.forecast(X, y_missing, return_std=True)

t = np.arange(2350, 3000)
fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
for k, ax in enumerate(axes):
    ax.plot(t, y[t, k], "k.", ms=2, label="data (grey: withheld)")
    ax.plot(t[np.isnan(y_missing[t, k])], y[t, k][np.isnan(y_missing[t, k])], ".",
            color="0.7", ms=2)
    ax.plot(t, smoothed_y[t, k], lw=1, label="smoothed")
    ax.plot(t, forecast[t, k], lw=1, label="one-step forecast")
    ax.fill_between(t, forecast[t, k] - 2 * std[t, k], forecast[t, k] + 2 * std[t, k],
                    alpha=0.2, label="forecast ± 2 std")
    ax.set_ylabel(f"output {k + 1}")
axes[0].legend(loc="upper left", fontsize=8, ncol=4)
axes[-1].set_xlabel("time step")
fig.tight_layout()
plt.show()
