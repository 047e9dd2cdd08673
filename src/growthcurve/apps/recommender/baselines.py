"""The baselines a practitioner tries first: popularity, item-kNN (cosine co-occurrence), ALS and BPR.

All share one shape (sklearn style): ``fit(user_items)`` on the training users x items matrix returns
self; ``score(users, history)`` gives dense scores for rows ``users`` of that matrix, where ``history``
(one CSR row per user) is what the user has done up to the moment being predicted. The last three are
the `implicit` library's implementations.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


class PopularityRecommender:
    """Score every item by how many training users interacted with it."""

    def fit(self, user_items: sp.csr_matrix) -> PopularityRecommender:
        self.counts_ = np.asarray(user_items.sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts_, (history.shape[0], len(self.counts_))).copy()


class ItemKNNRecommender:
    """Item-item cosine similarity of co-occurrence (`implicit.nearest_neighbours.CosineRecommender`),
    each item keeping its ``neighbours`` most similar items; a user's score sums over their history."""

    def __init__(self, neighbours: int = 100, num_threads: int = 0) -> None:
        self.neighbours = neighbours
        self.num_threads = num_threads

    def fit(self, user_items: sp.csr_matrix) -> ItemKNNRecommender:
        from implicit.nearest_neighbours import CosineRecommender

        model = CosineRecommender(K=self.neighbours, num_threads=self.num_threads)
        with warnings.catch_warnings():  # implicit converts to COO internally, then warns about its own input
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(user_items.tocsr(), show_progress=False)
        self.similarity_ = model.similarity.tocsr()
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history @ self.similarity_).todense(), dtype=np.float32)


def load_als(path: str) -> Any:
    """An `implicit` ALS model saved with ``.save`` (its BLAS-thread warning is moot for scoring)."""
    from implicit.cpu.als import AlternatingLeastSquares

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
        return AlternatingLeastSquares.load(path)


class ALSRecommender:
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) from `implicit`; a user's factors are re-solved
    from the history given at scoring time, so later interactions count without refitting."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, user_items: sp.csr_matrix) -> ALSRecommender:
        from implicit.cpu.als import AlternatingLeastSquares

        # implicit runs its own threads; nested BLAS threads only slow it down (it warns when it finds them)
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.num_threads,
            )
            model.fit(user_items.tocsr(), show_progress=False)
        self.model_ = model
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def user_factors(self, history: sp.csr_matrix) -> np.ndarray:
        """Factors solved from each history row against the fitted item factors."""
        ids = np.arange(history.shape[0])
        with threadpool_limits(1, "blas"):
            f = self.model_.recalculate_user(ids, history.tocsr())
        return np.asarray(f, dtype=np.float32).reshape(history.shape[0], -1)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self.user_factors(history) @ self.item_factors_.T


class BPRRecommender:
    """Bayesian Personalised Ranking (Rendle et al. 2009) from `implicit`; it cannot re-solve a user from a
    new history, so it scores with the factors learned for that training user."""

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, user_items: sp.csr_matrix) -> BPRRecommender:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.num_threads,
        )
        model.fit(user_items.tocsr(), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T
