"""scikit-learn estimators over simkernel's exact search: `NearestNeighbors`
and `KNeighborsTransformer`, drop-in for scikit-learn's brute-force ones.

They take scikit-learn's arguments and give its answers (docs/sklearn.md):
the same neighbours in the same order (ties to the lower row), distances of
the input's float type, graphs as sparse matrices, the training points left
out of their own neighbourhoods when ``X`` is omitted. Only the search
itself is simkernel's. Needs scikit-learn 1.6 or newer (its
``validate_data``).
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Union

import numpy as np

try:
    import scipy.sparse  # type: ignore[import-untyped]
    import sklearn  # type: ignore[import-untyped]
    from sklearn.base import BaseEstimator, TransformerMixin  # type: ignore[import-untyped]
    from sklearn.utils.validation import (  # type: ignore[import-untyped]
        check_is_fitted, validate_data)
except ImportError as missing:
    raise ImportError("simkernel.sklearn needs scikit-learn 1.6 or newer: "
                      "pip install 'simkernel[sklearn]'") from missing

from .search import range_search, rescore, topk

# scikit-learn's metric name -> (simkernel metric, distance from its score).
_METRICS = {"euclidean": "l2", "l2": "l2", "sqeuclidean": "sqeuclidean", "cosine": "cosine",
            "dot": "dot"}
_MODES = ("connectivity", "distance")
# Candidates beyond k that kneighbors rescores: the top-k can only differ
# between batchings if this many rows tie within float32 rounding.
_RESCORE_MARGIN = 8


def _distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """scikit-learn's distance, float64, from simkernel's scores: cosine
    similarity becomes ``1 - s`` clipped to [0, 2] as scikit-learn's
    ``cosine_distances`` clips; ``dot`` becomes ``-s`` so that nearer is
    smaller."""
    values = scores.astype(np.float64)
    if metric == "cosine":
        return np.clip(1.0 - values, 0.0, 2.0)
    if metric == "dot":
        return -values
    return values


def _sparse_graph(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                  shape: tuple[int, int]) -> Any:
    """A CSR graph in the sparse interface scikit-learn is configured for."""
    if sklearn.get_config().get("sparse_interface", "spmatrix") == "sparray":
        return scipy.sparse.csr_array((data, indices, indptr), shape=shape)
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=shape)


class NearestNeighbors(BaseEstimator):
    """Exact nearest neighbours, as ``sklearn.neighbors.NearestNeighbors``
    with ``algorithm="brute"``.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours per query for `kneighbors`.
    radius : float, default=1.0
        The distance bound for `radius_neighbors` (inclusive).
    metric : {"minkowski", "euclidean", "l2", "sqeuclidean", "cosine", "dot"}, default="minkowski"
        ``"minkowski"`` with ``p=2`` is euclidean. ``"cosine"`` is one minus
        the cosine similarity; ``"dot"`` is the negated inner product (so the
        nearest has the largest inner product), for maximum-inner-product
        search.
    p : float, default=2
        The Minkowski power; only 2 is supported.
    algorithm : {"auto", "brute"}, default="auto"
        Accepted for compatibility; the search is always exact brute force.
    n_jobs : int, optional
        Threads for the search. ``None`` or ``-1``: every core (simkernel's
        default, not scikit-learn's single job).
    """

    def __init__(self, n_neighbors: int = 5, radius: float = 1.0, metric: str = "minkowski",
                 p: float = 2, algorithm: str = "auto", n_jobs: Optional[int] = None) -> None:
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.metric = metric
        self.p = p
        self.algorithm = algorithm
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags

    def _check_params(self) -> None:
        if self.metric == "minkowski":
            if self.p != 2:
                raise ValueError(f"p={self.p!r} is not supported: simkernel computes the "
                                 "Minkowski distance for p=2 (euclidean) only")
        elif self.metric not in _METRICS:
            raise ValueError(f"metric={self.metric!r} is not supported; expected one of "
                             f"{['minkowski', *_METRICS]}")
        if self.algorithm not in ("auto", "brute"):
            raise ValueError(f"algorithm={self.algorithm!r} is not supported: the search is "
                             "exact brute force (use 'auto' or 'brute')")
        _check_count(self.n_neighbors, "n_neighbors")
        _check_radius(self.radius)
        if self.n_jobs is not None and (not isinstance(self.n_jobs, numbers.Integral)
                                        or isinstance(self.n_jobs, bool)
                                        or self.n_jobs == 0 or self.n_jobs < -1):
            raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {self.n_jobs!r}")

    def fit(self, X: Any, y: Any = None) -> "NearestNeighbors":
        """Holds ``X`` (as float32) as the points to search.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : ignored
        """
        self._check_params()
        data = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        self._fit_X = np.ascontiguousarray(data, dtype=np.float32)
        self._distance_dtype = data.dtype
        self.n_samples_fit_ = data.shape[0]
        self.effective_metric_ = "euclidean" if self.metric in ("minkowski", "l2") else self.metric
        self.effective_metric_params_: dict[str, Any] = {}
        return self

    @property
    def _threads(self) -> Optional[int]:
        return None if self.n_jobs in (None, -1) else int(self.n_jobs)

    def _queries(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        data = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        return np.asarray(data, dtype=np.float32)

    def kneighbors(self, X: Any = None, n_neighbors: Optional[int] = None,
                   return_distance: bool = True) -> Union[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """The ``n_neighbors`` nearest fitted points to each query, nearest
        first (ties to the lower index).

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features), optional
            Without it the fitted points are the queries, and each is left out
            of its own neighbours.
        n_neighbors : int, optional
            Default: the estimator's.
        return_distance : bool, default=True

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors)
            Only if ``return_distance``; float32 for float32 input, else float64.
        indices : ndarray of shape (n_queries, n_neighbors)
        """
        check_is_fitted(self)
        k = _check_count(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors")
        query_is_train = X is None
        queries = self._fit_X if query_is_train else self._queries(X)
        wanted = k + 1 if query_is_train else k
        if wanted > self.n_samples_fit_:
            raise ValueError(f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {wanted}, "
                             f"n_samples_fit = {self.n_samples_fit_}, n_samples = {len(queries)}")
        metric = _METRICS[self.effective_metric_]
        # A batch scores a query in float32 by a kernel chosen by the batch's
        # size, so its last bits depend on the batch; rescore scores each
        # query on its own. Its scores and order (from a few more candidates
        # than needed) make results independent of how queries are batched,
        # as scikit-learn asks of an estimator.
        depth = min(self.n_samples_fit_, wanted + _RESCORE_MARGIN)
        candidates = topk(queries, self._fit_X, depth, metric, threads=self._threads).indices
        scores, indices = rescore(queries, candidates, self._fit_X, wanted, metric,
                                  threads=self._threads)
        distances = _distances(scores, metric)
        if query_is_train:
            distances, indices = _drop_self(distances, indices)
        if not return_distance:
            return indices
        return distances.astype(self._distance_dtype, copy=False), indices

    def kneighbors_graph(self, X: Any = None, n_neighbors: Optional[int] = None,
                         mode: str = "connectivity") -> Any:
        """The k-neighbours graph: a CSR matrix of shape (n_queries,
        n_samples_fit) with ones (``mode="connectivity"``) or distances
        (``mode="distance"``) at each query's neighbours."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        check_is_fitted(self)
        k = _check_count(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors")
        distances, indices = self.kneighbors(X, k, return_distance=True)
        data = (np.ones(indices.size) if mode == "connectivity" else distances.ravel())
        indptr = np.arange(0, indices.size + 1, k)
        return _sparse_graph(data, indices.ravel(), indptr, (len(indices), self.n_samples_fit_))

    def radius_neighbors(self, X: Any = None, radius: Optional[float] = None,
                         return_distance: bool = True, sort_results: bool = False) -> Any:
        """Every fitted point within ``radius`` (inclusive) of each query.

        Returns object arrays of per-query arrays, as scikit-learn does. They
        are always nearest first (ties to the lower index), which also
        satisfies ``sort_results=True``.
        """
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        lims, distances, indices = self._within(X, radius)
        per_query_indices = np.empty(len(lims) - 1, dtype=object)
        per_query_distances = np.empty(len(lims) - 1, dtype=object)
        for i in range(len(lims) - 1):
            per_query_indices[i] = indices[lims[i]:lims[i + 1]]
            per_query_distances[i] = distances[lims[i]:lims[i + 1]]
        if not return_distance:
            return per_query_indices
        return per_query_distances, per_query_indices

    def radius_neighbors_graph(self, X: Any = None, radius: Optional[float] = None,
                               mode: str = "connectivity", sort_results: bool = False) -> Any:
        """The radius-neighbours graph: a CSR matrix of shape (n_queries,
        n_samples_fit) with ones or distances at each query's neighbours."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        lims, distances, indices = self._within(X, radius)
        data = np.ones(indices.size) if mode == "connectivity" else distances
        return _sparse_graph(data, indices, lims, (len(lims) - 1, self.n_samples_fit_))

    def _within(self, X: Any, radius: Optional[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lims, distances, indices) of every fitted point within the radius,
        flat as `simkernel.range_search` gives them, self left out when ``X``
        is omitted."""
        check_is_fitted(self)
        bound = _check_radius(self.radius if radius is None else radius)
        query_is_train = X is None
        queries = self._fit_X if query_is_train else self._queries(X)
        metric = _METRICS[self.effective_metric_]
        if metric in ("cosine", "dot"):
            # Similarities: search a hair wider than the bound, then keep
            # exactly the rows whose scikit-learn distance is within it.
            threshold = (1.0 - bound if metric == "cosine" else -bound)
            threshold -= 1e-6 * max(1.0, abs(threshold))
        else:
            threshold = bound
        found = range_search(queries, self._fit_X, threshold, metric, threads=self._threads)
        distances = _distances(found.scores, metric)
        owner = np.repeat(np.arange(len(queries)), found.counts)
        keep = distances <= bound
        if query_is_train:
            keep &= found.indices != owner
        counts = np.bincount(owner[keep], minlength=len(queries))
        lims = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return lims, distances[keep].astype(self._distance_dtype), found.indices[keep]


class KNeighborsTransformer(TransformerMixin, NearestNeighbors):
    """The k-neighbours graph as a transformer, as
    ``sklearn.neighbors.KNeighborsTransformer``: feeds TSNE, Isomap, DBSCAN,
    LOF or SpectralClustering with ``metric="precomputed"``.

    Parameters
    ----------
    mode : {"distance", "connectivity"}, default="distance"
    n_neighbors : int, default=5
        Neighbours per sample. With ``mode="distance"`` one more is computed,
        since each sample is its own nearest neighbour (scikit-learn's rule).
    metric, p, algorithm, n_jobs
        As for `NearestNeighbors`.
    """

    def __init__(self, *, mode: str = "distance", n_neighbors: int = 5, metric: str = "minkowski",
                 p: float = 2, algorithm: str = "auto", n_jobs: Optional[int] = None) -> None:
        super().__init__(n_neighbors=n_neighbors, metric=metric, p=p, algorithm=algorithm,
                         n_jobs=n_jobs)
        self.mode = mode

    def fit(self, X: Any, y: Any = None) -> "KNeighborsTransformer":
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        super().fit(X)
        self._n_features_out = self.n_samples_fit_
        return self

    def transform(self, X: Any) -> Any:
        """The graph of ``X``'s neighbours among the fitted points: a CSR
        matrix of shape (n_samples, n_samples_fit)."""
        check_is_fitted(self)
        extra = 1 if self.mode == "distance" else 0
        return self.kneighbors_graph(X, self.n_neighbors + extra, mode=self.mode)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X).transform(X)


def _check_count(value: object, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Expected {name} > 0, got {value!r}")
    return int(value)


def _check_radius(value: object) -> float:
    radius = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else -1.0
    if not 0 <= radius < np.inf:
        raise ValueError(f"radius must be a finite number >= 0, got {value!r}")
    return radius


def _drop_self(distances: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each training point's neighbours without itself: its own index is
    removed where it was found, else the nearest (scikit-learn's rule, for
    points with more than k exact duplicates ranked before them)."""
    rows = np.arange(len(indices))[:, None]
    keep = indices != rows
    keep[keep.all(axis=1), 0] = False
    width = indices.shape[1] - 1
    return distances[keep].reshape(-1, width), indices[keep].reshape(-1, width)
