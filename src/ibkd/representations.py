"""How close are two models' representations? (The paper's MDS plots.)

Per model: the penultimate representations of a fixed sample of held-out examples (saved with
the test predictions), and the n x n cosine-similarity matrix between those examples. Two models
are compared second-order (RSA-style, as the paper): the mean cosine similarity of corresponding
rows of their two matrices; distance = 1 - similarity. Linear CKA (Kornblith et al. 2019) is
computed alongside. All runs of a grid are then placed in 2-D by MDS on the distances: exact
classical MDS where the distances fit in a plane (one, two or identical runs), otherwise metric
MDS (scikit-learn's SMACOF, precomputed dissimilarities).
"""

from __future__ import annotations

import numpy as np

SAMPLE_SIZE = 1000
SAMPLE_SEED = 0


def sample_indices(n: int, size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> np.ndarray:
    """The fixed sample of example indices every model is compared on: `min(size, n)` distinct
    indices in [0, n), sorted, the same for every run (numpy's PCG64 seeded with `seed`)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def similarity_matrix(features: np.ndarray) -> np.ndarray:
    """Cosine similarity between every pair of examples: features [n, d] -> [n, n] in [-1, 1]
    (a zero row has similarity 0 to everything). The per-model matrix of RSA (Kriegeskorte et
    al. 2008), as the paper compares models."""
    u = _unit_rows(features)
    return u @ u.T


def rsa_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Second-order similarity of two models (the paper's, after Laakso & Cottrell 2000): the
    mean cosine similarity of corresponding rows of their [n, n] similarity matrices, in
    [-1, 1]; 1 for the same geometry."""
    return float(np.mean(np.sum(_unit_rows(a) * _unit_rows(b), axis=1)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019, eq. 5) between two representations of the same
    examples, x [n, d1] and y [n, d2]: ||y^T x||_F^2 / (||x^T x||_F ||y^T y||_F) after centring
    the columns; in [0, 1], invariant to rotations and isotropic scaling."""
    x = x.astype(np.float64) - x.mean(0)
    y = y.astype(np.float64) - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def pairwise(features: list[np.ndarray]) -> dict[str, np.ndarray]:
    """RSA similarity and linear CKA between every pair of k models (features [n, d_i] of the
    same n examples, any widths): {"rsa", "cka", "distance" = 1 - rsa}, each [k, k],
    symmetric, with ones (rsa, cka) or zeros (distance) on the diagonal."""
    sims = [similarity_matrix(f) for f in features]
    k = len(features)
    rsa, cka = np.eye(k), np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            rsa[i, j] = rsa[j, i] = rsa_similarity(sims[i], sims[j])
            cka[i, j] = cka[j, i] = linear_cka(features[i], features[j])
    return {"rsa": rsa, "cka": cka, "distance": 1 - rsa}


def _symmetric_distances(distance: np.ndarray) -> np.ndarray:
    """The symmetric part of a distance matrix, negatives clipped to 0, zero diagonal."""
    d = np.asarray(distance, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distance matrix of shape {d.shape}: expected [k, k]")
    d = np.clip((d + d.T) / 2, 0, None)
    np.fill_diagonal(d, 0)
    return d


def classical_mds(distance: np.ndarray, dims: int = 2) -> np.ndarray:
    """Classical (Torgerson) MDS: [k, dims] coordinates from a [k, k] distance matrix, from the
    top eigenvectors of the double-centred squared distances (Torgerson 1952; Borg & Groenen,
    "Modern Multidimensional Scaling", ch. 12). Centred at the origin; each axis' sign is
    fixed (its largest coordinate positive) so the result is deterministic. Exact when the
    distances are those of points in `dims` dimensions (any one, two or three runs)."""
    d = _symmetric_distances(distance)
    k = len(d)
    centre = np.eye(k) - 1 / k
    values, vectors = np.linalg.eigh(-0.5 * centre @ (d**2) @ centre)
    top = np.argsort(values)[::-1][:dims]
    # eigenvalues at rounding level (an axis the points do not use) count as 0
    kept = np.where(values[top] > 1e-10 * max(values.max(initial=0), 1e-300), values[top], 0)
    coords = vectors[:, top] * np.sqrt(kept)
    for j in range(coords.shape[1]):
        if coords[np.argmax(np.abs(coords[:, j])), j] < 0:
            coords[:, j] *= -1
    return np.pad(coords, ((0, 0), (0, dims - coords.shape[1])))


def mds(distance: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D coordinates [k, 2] for a precomputed [k, k] distance matrix (symmetrised, negatives
    clipped), placing the runs at their true distances where the plane can: the exact classical
    solution (`classical_mds`) when it reproduces every distance (one run: the origin; two: d
    apart; identical runs: one point), otherwise metric MDS (SMACOF, de Leeuw 1977) from
    scikit-learn, 4 random starts from `seed`. Raises `ValueError` for a non-square matrix."""
    d = _symmetric_distances(distance)
    exact = classical_mds(d)
    if np.allclose(pairwise_distances(exact), d, rtol=1e-6, atol=1e-9 * max(d.max(initial=0), 1)):
        return exact
    import inspect

    from sklearn.manifold import MDS

    options = {"n_components": 2, "random_state": seed, "n_init": 4}
    # scikit-learn >= 1.8 names the precomputed case `metric`, earlier ones `dissimilarity`
    if "metric_mds" in inspect.signature(MDS).parameters:
        options |= {"metric": "precomputed", "init": "random"}
    else:
        options |= {"dissimilarity": "precomputed"}
    return MDS(**options).fit_transform(d)


def pairwise_distances(coords: np.ndarray) -> np.ndarray:
    """Euclidean distances [k, k] between the rows of coords [k, m]."""
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt((diff**2).sum(-1))
