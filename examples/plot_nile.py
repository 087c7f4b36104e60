"""
The Nile: a local-level model against its published estimates
==============================================================

The annual flow of the Nile at Aswan, 1871-1970, is the first example of Durbin &
Koopman's *Time Series Analysis by State Space Methods*: a local-level model, a random
walk observed with noise,

.. math::

   s_t = s_{t-1} + w_t, \\quad w_t \\sim \\mathcal N(0, Q), \\qquad
   y_t = s_t + v_t, \\quad v_t \\sim \\mathcal N(0, R),

whose maximum-likelihood variances they publish: ``R = 15099`` and ``Q = 1469.1``. In
skkalman's terms that is ``A = C = 1`` held with ``fixed``, no intercept (the level is the
state), and a prior held wide around the first observation, as their diffuse start. The
local level has a unit root, so the stationary prior that a single sequence would
otherwise get does not exist: holding the prior is required, not a detail.
"""

import matplotlib.pyplot as plt
import numpy as np
import statsmodels.api as sm

from skkalman import KalmanFilterRegressor

y = sm.datasets.nile.load_pandas().data["volume"].to_numpy()
years = np.arange(1871, 1871 + len(y))
X = np.zeros((len(y), 0))  # no inputs

model = KalmanFilterRegressor(
    n_states=1, fit_intercept=False,
    # Four significant digits need the log-likelihood within about 1e-6 nat of its maximum.
    tol=1e-6,
    fixed={"A": [[1.0]], "C": [[1.0]], "initial_state_mean": [y[0]],
           "initial_state_covariance": [[1e7]]},
).fit(X, y)
print(f"R = {model.R_[0, 0]:.1f} (published 15099), Q = {model.Q_[0, 0]:.1f} "
      f"(published 1469.1); converged: {model.converged_}, {model.n_iter_} iterations")

# %%
# statsmodels' ``UnobservedComponents`` fits the same model with an exact diffuse prior;
# its default optimizer stops a little short of the four digits.
uc = sm.tsa.UnobservedComponents(y, "llevel").fit(disp=False)
print(f"statsmodels: R = {uc.params[0]:.1f}, Q = {uc.params[1]:.1f}")

# %%
# The filtered level uses the years up to each one, the smoothed level all of them; the
# bands are two standard deviations of the level. Ten NaN years after 1970 make
# ``forecast`` run on without measurements: forecasts of the flow, whose band adds the
# measurement noise ``R`` and widens with the random walk's ``Q`` every year.
filtered, filtered_cov = model.filter(X, y)
smoothed, smoothed_cov = model.smooth(X, y)
ahead = 10
y_ext = np.r_[y, np.full(ahead, np.nan)]
forecast, forecast_std = model.forecast(np.zeros((len(y_ext), 0)), y_ext, return_std=True)
years_ext = np.arange(1871, 1871 + len(y_ext))

fig, ax = plt.subplots(figsize=(9, 4.5))
ax.plot(years, y, "k.", ms=4, label="flow (10⁸ m³)")
for name, mean, cov, color in [("filtered level", filtered, filtered_cov, "C0"),
                               ("smoothed level", smoothed, smoothed_cov, "C1")]:
    mean, std = mean[:, 0], np.sqrt(cov[:, 0, 0])
    ax.plot(years, mean, color=color, label=name)
    ax.fill_between(years, mean - 2 * std, mean + 2 * std, color=color, alpha=0.15)
future = slice(len(y) - 1, None)
ax.plot(years_ext[future], forecast[future], color="C2", label="forecast")
ax.fill_between(years_ext[future], (forecast - 2 * forecast_std)[future],
                (forecast + 2 * forecast_std)[future], color="C2", alpha=0.15)
ax.axvline(1899, color="0.6", ls=":", lw=1)
ax.text(1900, ax.get_ylim()[1] * 0.97, "1899: the flow drops", fontsize=8, va="top",
        color="0.4")
ax.set_xlabel("year")
ax.legend(loc="upper right", fontsize=8, ncol=2)
fig.tight_layout()
plt.show()
