"""
Forecasting baselines: the Kalman model, the RNN and a lagged Ridge
===================================================================

A common first question about a new series is how much a state-space model or a
recurrent network gains over a linear regression on the last few values. All three are
scikit-learn regressors here, so each is tuned by ``GridSearchCV`` on the same folds.
The data are several recordings of one system; ``GroupKFold`` keeps each recording whole
(the same folds for every model), and metadata routing hands each fold's ``groups`` to
the models that use them, so that no state runs from one recording into the next (the
Ridge needs no such care: its lag columns are built per recording by
:func:`~skkalman.datasets.lagged_targets`).

Every model forecasts ``y_t`` from the past: the columns of ``X`` are the last
``n_lags`` measurements. The Kalman model and the RNN carry their own state, so they are
given the most recent lag only; the Ridge is given 1 or 4 lags (a grid parameter).
"""

import matplotlib.pyplot as plt
import numpy as np
import sklearn
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skkalman import ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.datasets import lagged_targets, make_lds

N_LAGS = 4
lengths = [400, 350, 450, 380, 420, 400]
_, y_raw, system = make_lds(system="two_rotations", n_samples=sum(lengths),
                            lengths=lengths, random_state=3)
X, y, lengths = lagged_targets(y_raw, lengths=lengths, n_lags=N_LAGS)
n_targets = y.shape[1]
recording = np.repeat(np.arange(len(lengths)), lengths)


def keep_lags(X, n_lags):
    """The columns of the ``n_lags`` most recent measurements (lag 1 first)."""
    return X[:, :n_lags * n_targets]


# %%
# One search per kind of model, on the same folds
# -----------------------------------------------
# Each model's ``score`` is its R² on the held-out recordings. The Kalman model and the
# RNN request the fold's ``groups`` for ``fit`` and ``score``, so each recording is
# filtered from its own start. (One search whose grid swaps the pipeline's last step
# would not do: ``GridSearchCV`` routes metadata by the requests of the estimator it is
# given, not of each candidate, so swapping a Ridge for a Kalman model there would fit the
# Kalman model on the recordings glued into one sequence.)
cv = GroupKFold(n_splits=3)
lags = FunctionTransformer(keep_lags, kw_args={"n_lags": 1})
searches = {}
with sklearn.config_context(enable_metadata_routing=True):
    searches["Ridge"] = GridSearchCV(
        Pipeline([("lags", lags), ("model", Ridge(alpha=1e-3))]),
        {"lags__kw_args": [{"n_lags": 1}, {"n_lags": N_LAGS}]}, cv=cv)
    kalman = (KalmanFilterRegressor(random_state=0)
              .set_fit_request(groups=True).set_score_request(groups=True))
    searches["Kalman"] = GridSearchCV(Pipeline([("lags", lags), ("model", kalman)]),
                                      {"model__n_states": [2, 4]}, cv=cv)
    rnn = (ElmanRNNRegressor(nonlinearity="tanh", random_state=0)
           .set_fit_request(groups=True).set_score_request(groups=True))
    searches["tanh RNN"] = GridSearchCV(Pipeline([("lags", lags), ("model", rnn)]),
                                        {"model__hidden_size": [4, 8]}, cv=cv)
    for search in searches.values():
        search.fit(X, y, groups=recording)

names, means, splits = [], [], []
for kind, search in searches.items():
    results = search.cv_results_
    for i, params in enumerate(results["params"]):
        (value,) = params.values()
        size = {"Ridge": f"{value['n_lags'] if isinstance(value, dict) else value} lags",
                "Kalman": f"{value} states", "tanh RNN": f"{value} units"}[kind]
        names.append(f"{kind}, {size}")
        means.append(results["mean_test_score"][i])
        splits.append([results[f"split{k}_test_score"][i] for k in range(cv.n_splits)])
        print(f"{names[-1]:<20} R² = {means[-1]:.3f} ± {results['std_test_score'][i]:.3f}")

# %%
# The scores per fold
# -------------------
# The system has four states and is observed through two noisy outputs, so its optimal
# one-step forecast depends on the whole past: a state-space model with four states
# attains it; a regression on a few lags approaches it as the lags grow.
fig, ax = plt.subplots(figsize=(6, 3.2))
order = np.argsort(means)
for row, i in enumerate(order):
    ax.plot(splits[i], np.full(cv.n_splits, row), "o", color="0.6")
    ax.plot(means[i], row, "D", color="C0")
ax.set_yticks(range(len(order)), [names[i] for i in order])
ax.set_xlabel("held-out R² (diamonds: mean over folds)")
fig.tight_layout()
plt.show()
