"""
Does a trained RNN reveal the dynamics behind the data?
=======================================================

The question the package exists for, in its two set-ups. *Forecasting*: each model
forecasts a series from its own past (``X_t = y_{t-1}``), and ``DynamicsRecovery`` reads
the effective transition matrix of the closed loop in which the forecast is fed back as
the next input. *Input-driven*: measured inputs drive the system, and the transition is
read from the model directly. The Kalman model, a linear and a tanh Elman network are
compared with the true eigenvalues (for the tanh network, its Jacobian averaged along the
data's trajectory). How far such a comparison holds across systems and data sizes, and
with what uncertainty, is what ``python -m skkalman`` measures.
"""

import matplotlib.pyplot as plt
import numpy as np

from skkalman import DynamicsRecovery, ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.datasets import lagged_targets, make_lds
from skkalman.metrics import eigenvalue_error

SETUPS = {}
# Forecasting: the models see only the series; X_t = y_{t-1} (column k is target k).
_, y_raw, system = make_lds(system="two_rotations", n_samples=4_000, random_state=1)
X, y, _ = lagged_targets(y_raw)
SETUPS["forecasting"] = (X, y, [0, 1])
# Input-driven: white-noise inputs drive the system; the transition is read directly.
SETUPS["input-driven"] = (*make_lds(system="two_rotations", n_inputs=2, n_samples=4_000,
                                    process_noise=0.01, measurement_noise=0.1,
                                    random_state=1)[:2], None)


def models():
    return {
        "Kalman": KalmanFilterRegressor(n_states=4, random_state=0),
        # Surplus hidden units are truncated away by order=4 (a minimal realization).
        "linear RNN": ElmanRNNRegressor(hidden_size=8, nonlinearity="linear",
                                        random_state=0),
        "tanh RNN": ElmanRNNRegressor(hidden_size=8, nonlinearity="tanh", max_epochs=300,
                                      random_state=0),
    }


recovered, raw = {}, {}
for setup, (X, y, feedback) in SETUPS.items():
    for name, model in models().items():
        recovery = DynamicsRecovery(model, feedback_columns=feedback, order=4).fit(X, y)
        recovered[setup, name] = recovery.eigenvalues_
        error = eigenvalue_error(recovery.eigenvalues_, system.A)
        print(f"{setup:>12}, {name:>10}: eigenvalue error {error:.4f}")
        if setup == "forecasting" and name == "linear RNN":
            raw_W_hh = np.linalg.eigvals(recovery.estimator_.W_hh_)

# %%
# The naive reading
# -----------------
# A forecasting network's recurrent matrix is not the system's ``A``: it learns the
# optimal predictor, whose transition is ``A(I - KC)`` (``K`` the Kalman gain), a matrix
# with smaller eigenvalues. Only the closed loop, in which the forecast is fed back as the
# next input, has the system's eigenvalues.
print("moduli of the forecasting linear RNN's raw W_hh eigenvalues:",
      np.sort(np.abs(raw_W_hh))[::-1].round(3))
print("moduli of its closed loop's eigenvalues:",
      np.abs(recovered["forecasting", "linear RNN"]).round(3))
print("moduli of the true A's eigenvalues:", np.abs(system.eigenvalues).round(3))

# %%
# The recovered eigenvalues on the complex plane, with the unit circle.
circle = np.exp(1j * np.linspace(0, 2 * np.pi, 300))
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6), sharex=True, sharey=True)
for ax, setup in zip(axes, SETUPS, strict=True):
    ax.plot(circle.real, circle.imag, color="0.7", lw=1)
    ax.scatter(system.eigenvalues.real, system.eigenvalues.imag, s=150,
               facecolors="none", edgecolors="k", label="truth")
    for name, marker in zip(models(), "s^v", strict=True):
        eig = recovered[setup, name]
        ax.scatter(eig.real, eig.imag, marker=marker, label=name)
    if setup == "forecasting":
        ax.scatter(raw_W_hh.real, raw_W_hh.imag, marker="x", color="0.4",
                   label="linear RNN, raw W_hh")
    ax.set_aspect("equal")
    ax.set_title(setup)
axes[0].legend(loc="lower left", fontsize="small")
fig.suptitle("eigenvalues of the effective transition matrix")
plt.show()
