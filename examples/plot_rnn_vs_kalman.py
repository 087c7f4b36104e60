"""
Does a trained RNN reveal the dynamics behind the data?
=======================================================

The question the package exists for. Both models are fitted to forecast a series from its
own past (``X_t = y_{t-1}``); ``DynamicsRecovery`` reads the effective transition matrix
out of each, closing the loop in which the forecast is fed back as the next input, and
the eigenvalues are compared with the true ones.
"""

import matplotlib.pyplot as plt
import numpy as np

from skkalman import DynamicsRecovery, ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.datasets import lagged_targets, make_lds
from skkalman.metrics import eigenvalue_error

_, y_raw, system = make_lds(system="two_rotations", n_samples=10_000, random_state=1)
X, y, lengths = lagged_targets(y_raw)  # X_t = y_{t-1}
feedback = [0, 1]  # column k of X is target k one step back

models = {
    "Kalman": KalmanFilterRegressor(n_states=4, random_state=0),
    # Surplus hidden units are truncated away by order=4 (a minimal realization).
    "linear RNN": ElmanRNNRegressor(hidden_size=8, nonlinearity="linear", random_state=0),
}
recovered = {}
for name, model in models.items():
    recovery = DynamicsRecovery(model, feedback_columns=feedback, order=4).fit(X, y)
    recovered[name] = recovery.eigenvalues_
    error = eigenvalue_error(recovery.eigenvalues_, system.A)
    print(f"{name:>10}: eigenvalue error {error:.4f}")

# %%
# The recovered eigenvalues on the complex plane, with the unit circle.
circle = np.exp(1j * np.linspace(0, 2 * np.pi, 300))
fig, ax = plt.subplots(figsize=(5, 5))
ax.plot(circle.real, circle.imag, color="0.7", lw=1)
ax.scatter(system.eigenvalues.real, system.eigenvalues.imag, s=150, facecolors="none",
           edgecolors="k", label="truth")
for (name, eig), marker in zip(recovered.items(), "s^", strict=True):
    ax.scatter(eig.real, eig.imag, marker=marker, label=name)
ax.set_aspect("equal")
ax.legend(loc="lower left")
ax.set_title("eigenvalues of the effective transition matrix")
plt.show()
