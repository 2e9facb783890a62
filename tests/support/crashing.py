"""A model that kills its own process for one value: a stand-in for a segfault or the OOM killer."""

from __future__ import annotations

import os
import signal

from sklearn.linear_model import Lasso


class CrashingLasso(Lasso):
    def fit(self, X, y, **kwargs):  # type: ignore[no-untyped-def]
        if self.alpha == 13:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, y, **kwargs)
