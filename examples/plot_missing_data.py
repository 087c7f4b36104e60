"""
Missing measurements: filtering, smoothing and their uncertainty
================================================================

Two outputs of a 4-state system with measurements missing in three ways: a long gap
where both outputs are lost, a stretch where only the second output is measured, and
single values missing at random. NaN in ``y`` is all the model needs: a row with nothing
observed gets no measurement update, a partly observed row is updated on what it has, and
the likelihood that ``fit`` maximizes counts exactly the observed values.

The filter estimates each state from the past; the smoother uses the whole series and so
bridges the gap from both sides. Their bands (two standard deviations of the output,
measurement noise included) widen where information is missing, and cover the withheld
values as often as they should.
"""

import matplotlib.pyplot as plt
import numpy as np

from skkalman import KalmanFilterRegressor
from skkalman.datasets import make_lds

X, y, system = make_lds(system="two_rotations", n_samples=2000, random_state=3)
rng = np.random.default_rng(0)
y_obs = y.copy()
y_obs[1500:1560] = np.nan  # both outputs lost
y_obs[1620:1700, 0] = np.nan  # only the second output measured
y_obs[rng.random(y.shape) < 0.1] = np.nan  # 10% of single values
missing = np.isnan(y_obs)
print(f"{missing.mean():.1%} of the values missing; "
      f"{np.all(missing, axis=1).sum()} rows with nothing observed")

model = KalmanFilterRegressor(n_states=4, random_state=0).fit(X, y_obs)
print(f"fitted on the observed values only: converged {model.converged_}")

# %%
# Output moments: the state's mean and covariance mapped through ``C``, plus ``R``.


def output_band(means, covariances):
    mean = means @ model.C_.T + model.intercept_
    var = np.einsum("ij,tjk,ik->ti", model.C_, covariances, model.C_) + np.diag(model.R_)
    return mean, np.sqrt(var)


filtered, filtered_std = output_band(*model.filter(X, y_obs))
smoothed, smoothed_std = output_band(*model.smooth(X, y_obs))

# The withheld values: how often do the 95% bands hold them?
for name, mean, std in [("filtered", filtered, filtered_std),
                        ("smoothed", smoothed, smoothed_std)]:
    inside = np.abs(y[missing] - mean[missing]) <= 1.96 * std[missing]
    print(f"{name}: the 95% band holds {inside.mean():.1%} of the withheld values")

# %%
t = np.arange(1440, 1760)
fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
for k, ax in enumerate(axes):
    seen = ~missing[t, k]
    ax.plot(t[seen], y[t, k][seen], "k.", ms=3, label="measured")
    ax.plot(t[~seen], y[t, k][~seen], "x", color="C3", ms=4, label="withheld")
    for name, mean, std, color in [("filtered", filtered, filtered_std, "C0"),
                                   ("smoothed", smoothed, smoothed_std, "C1")]:
        ax.plot(t, mean[t, k], color=color, lw=1, label=name)
        ax.fill_between(t, mean[t, k] - 2 * std[t, k], mean[t, k] + 2 * std[t, k],
                        color=color, alpha=0.15)
    ax.axvspan(1500, 1560, color="0.9", zorder=0)
    ax.set_ylabel(f"output {k + 1}")
axes[0].axvspan(1620, 1700, color="0.95", zorder=0)
axes[0].legend(loc="upper left", fontsize=8, ncol=4)
axes[-1].set_xlabel("time step")
fig.tight_layout()
plt.show()
