"""Torch and skorch pieces of :class:`skkalman.ElmanRNNRegressor`.

Importing this package does not import torch; its modules do (``module`` holds the torch
module and the masked loss, ``data`` the windowing). :mod:`skkalman.rnn` imports them only
inside methods, so ``import skkalman`` stays free of torch.
"""
