"""How close are two models' representations? (The paper's MDS plots.)

Per model: the penultimate representations of a fixed sample of held-out examples (saved with
the test predictions), and the n x n cosine-similarity matrix between those examples. Two models
are compared second-order (RSA-style, as the paper): the mean cosine similarity of corresponding
rows of their two matrices; distance = 1 - similarity. Linear CKA (Kornblith et al. 2019) is
computed alongside. All runs of a grid are then placed in 2-D by metric MDS on the distances
(scikit-learn, precomputed dissimilarities).
"""

from __future__ import annotations

import numpy as np

SAMPLE_SIZE = 1000
SAMPLE_SEED = 0


def sample_indices(n: int, size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> np.ndarray:
    """The fixed sample of example indices every model is compared on."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def similarity_matrix(features: np.ndarray) -> np.ndarray:
    """Cosine similarity between every pair of examples: [n, n]."""
    u = _unit_rows(features)
    return u @ u.T


def rsa_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of corresponding rows of two models' similarity matrices."""
    return float(np.mean(np.sum(_unit_rows(a) * _unit_rows(b), axis=1)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two representations of the same examples ([n, d1], [n, d2])."""
    x = x.astype(np.float64) - x.mean(0)
    y = y.astype(np.float64) - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def pairwise(features: list[np.ndarray]) -> dict[str, np.ndarray]:
    """RSA similarity and linear CKA between every pair of models (same examples, any widths)."""
    sims = [similarity_matrix(f) for f in features]
    k = len(features)
    rsa, cka = np.eye(k), np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            rsa[i, j] = rsa[j, i] = rsa_similarity(sims[i], sims[j])
            cka[i, j] = cka[j, i] = linear_cka(features[i], features[j])
    return {"rsa": rsa, "cka": cka, "distance": 1 - rsa}


def mds(distance: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D coordinates for a precomputed (symmetric) distance matrix."""
    from sklearn.manifold import MDS

    d = np.clip((distance + distance.T) / 2, 0, None)
    np.fill_diagonal(d, 0)
    if len(d) < 3:
        return np.column_stack([np.arange(len(d), dtype=float), np.zeros(len(d))])
    import inspect

    options = {"n_components": 2, "random_state": seed, "n_init": 4}
    # scikit-learn >= 1.8 names the precomputed case `metric`, earlier ones `dissimilarity`
    if "metric_mds" in inspect.signature(MDS).parameters:
        options |= {"metric": "precomputed", "init": "random"}
    else:
        options |= {"dissimilarity": "precomputed"}
    return MDS(**options).fit_transform(d)
