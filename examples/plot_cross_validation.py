"""
Cross-validation by whole sequences
===================================

Real data often come as many recordings of one system: sessions, patients, machines.
Concatenated, they are described by ``groups``, one label per row (rows of one recording
together, in time order). scikit-learn's group splitters keep each recording whole
(``GroupKFold``), and its metadata routing cuts ``groups`` with the rows, so every fold's
``fit`` and ``score`` know where each of its sequences starts: the state never crosses
from one recording into the next, in training or in scoring.

Routing is switched on with ``sklearn.config_context(enable_metadata_routing=True)`` (or
``sklearn.set_config``), and the estimator says which methods take ``groups``.
"""

import matplotlib.pyplot as plt
import numpy as np
import sklearn
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate

from skkalman import KalmanFilterRegressor
from skkalman.datasets import make_lds
from skkalman.metrics import eigenvalue_error, make_dynamics_scorer

# Six recordings of a damped oscillator driven by a white-noise input.
lengths = [260, 200, 300, 180, 240, 220]
X, y, system = make_lds(system="oscillator", n_inputs=1, n_samples=sum(lengths),
                        lengths=lengths, random_state=1)
recording = np.repeat([f"session {k}" for k in range(len(lengths))], lengths)

# %%
# Choosing the number of states by R² on held-out recordings
# ----------------------------------------------------------
# The default scoring is the model's own ``score`` (R² of ``predict``), which receives the
# test fold's ``groups``. (A scorer given by name, such as ``"r2"``, would call
# ``predict(X)`` without them: one long sequence across the test recordings.)
with sklearn.config_context(enable_metadata_routing=True):
    model = (KalmanFilterRegressor(random_state=0)
             .set_fit_request(groups=True).set_score_request(groups=True))
    search = GridSearchCV(model, {"n_states": [1, 2]}, cv=GroupKFold(n_splits=3))
    search.fit(X, y, groups=recording)
print("mean R² per n_states:", search.cv_results_["mean_test_score"].round(3))
print("best:", search.best_params_)

# %%
# ... or by the dynamics each candidate recovers
# ----------------------------------------------
# In a simulation study the true transition matrix is known, and
# :func:`~skkalman.metrics.make_dynamics_scorer` rates each fold's model by its
# eigenvalues (it requests ``groups`` too: an RNN is linearized along each sequence).
with sklearn.config_context(enable_metadata_routing=True):
    by_dynamics = GridSearchCV(model, {"n_states": [1, 2]}, cv=GroupKFold(n_splits=3),
                               scoring=make_dynamics_scorer(system.A))
    by_dynamics.fit(X, y, groups=recording)
print("eigenvalue error per n_states:",
      (-by_dynamics.cv_results_["mean_test_score"]).round(3))

# %%
# The fold models
# ---------------
# ``cross_validate`` routes ``groups`` the same way (``params={"groups": ...}``); each
# fold's model is fitted on its own training recordings only.
with sklearn.config_context(enable_metadata_routing=True):
    folds = cross_validate(model.set_params(n_states=2), X, y, cv=GroupKFold(n_splits=3),
                           params={"groups": recording}, return_estimator=True)
for k, fold in enumerate(folds["estimator"]):
    print(f"fold {k}: test R² {folds['test_score'][k]:.3f}, eigenvalue error "
          f"{eigenvalue_error(fold.A_, system.A):.3f}")

circle = np.exp(1j * np.linspace(0, 2 * np.pi, 300))
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.plot(circle.real, circle.imag, color="0.7", lw=1)
ax.scatter(system.eigenvalues.real, system.eigenvalues.imag, s=150, facecolors="none",
           edgecolors="k", label="truth")
for k, fold in enumerate(folds["estimator"]):
    eig = np.linalg.eigvals(fold.A_)
    ax.scatter(eig.real, eig.imag, marker="x", label=f"fold {k}")
ax.set_aspect("equal")
ax.set_title("Eigenvalues learned on each fold's recordings")
ax.legend(loc="lower left")
plt.show()

# %%
# More than one machine
# ---------------------
# The folds are independent fits, so the same search runs on a Dask cluster through
# joblib's Dask backend (``pip install "dask[distributed]"``); scores and best parameters
# are those of the local run::
#
#     from dask.distributed import Client
#     from joblib import parallel_backend
#
#     client = Client("tcp://scheduler:8786")  # or Client(LocalCluster(...))
#     with parallel_backend("dask"), sklearn.config_context(enable_metadata_routing=True):
#         GridSearchCV(model, grid, cv=GroupKFold(5), n_jobs=-1).fit(X, y, groups=ids)
