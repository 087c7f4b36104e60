"""
Choosing an RNN's size by the dynamics it recovers
==================================================

``DynamicsRecovery`` is a scikit-learn meta-estimator, so its wrapped model's parameters
can be searched with ``GridSearchCV``. With a known system (simulation studies), the
scorer from ``make_dynamics_scorer`` ranks each candidate by how well the eigenvalues of
its effective transition matrix match the truth. The splitter keeps time order: each
fold trains on the past and is scored on the future.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

from skkalman import DynamicsRecovery, ElmanRNNRegressor
from skkalman.datasets import make_lds
from skkalman.metrics import make_dynamics_scorer

# Input-driven set-up: white-noise inputs drive the system, the target is its output.
X, y, system = make_lds(system="two_rotations", n_inputs=2, n_samples=3000,
                        process_noise=0.01, random_state=0)

search = GridSearchCV(
    DynamicsRecovery(ElmanRNNRegressor(nonlinearity="linear", max_epochs=40,
                                       random_state=0)),
    {"estimator__hidden_size": [2, 4]},
    scoring=make_dynamics_scorer(system.A),
    cv=TimeSeriesSplit(n_splits=2),
)
search.fit(X, y)
print("best hidden_size:", search.best_params_["estimator__hidden_size"])
print("eigenvalue error per size:", -search.cv_results_["mean_test_score"])

# %%
# The search refits the best model on all the data; its recovered eigenvalues:
eig = search.best_estimator_.eigenvalues_
circle = np.exp(1j * np.linspace(0, 2 * np.pi, 300))
fig, ax = plt.subplots(figsize=(5, 5))
ax.plot(circle.real, circle.imag, color="0.7", lw=1)
ax.scatter(system.eigenvalues.real, system.eigenvalues.imag, s=150, facecolors="none",
           edgecolors="k", label="truth")
ax.scatter(eig.real, eig.imag, marker="^", label="best RNN")
ax.set_aspect("equal")
ax.legend(loc="lower left")
plt.show()
