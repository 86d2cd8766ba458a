import numpy as np
import pytest

from ibkd.representations import (
    classical_mds,
    linear_cka,
    mds,
    pairwise,
    pairwise_distances,
    rsa_similarity,
    similarity_matrix,
)


def test_mds_places_one_run_at_the_origin():
    assert mds(np.zeros((1, 1))).tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("d", [0.05, 0.3, 1.0, 2.5])
def test_mds_draws_two_runs_at_their_distance(d):
    xy = mds(np.array([[0.0, d], [d, 0.0]]))
    assert xy.shape == (2, 2)
    assert np.linalg.norm(xy[0] - xy[1]) == pytest.approx(d)


def test_mds_puts_identical_runs_on_one_point():
    xy = mds(np.zeros((3, 3)))
    assert np.allclose(xy, xy[0]) and np.allclose(xy, 0)
    # two identical runs and a third at distance 0.4 from both
    d = np.array([[0, 0, 0.4], [0, 0, 0.4], [0.4, 0.4, 0]])
    xy = mds(d)
    assert np.allclose(xy[0], xy[1]) and np.linalg.norm(xy[0] - xy[2]) == pytest.approx(0.4)


def test_mds_keeps_planar_distances_and_falls_back_to_smacof():
    triangle = np.array([[0, 3, 4], [3, 0, 5], [4, 5, 0]], dtype=float)  # a right triangle
    assert np.allclose(pairwise_distances(mds(triangle)), triangle)
    # four runs at equal distances (a tetrahedron) do not fit in a plane: metric MDS, whose
    # best square has sides near 1 and diagonals near 1 too, so no distance is exact
    tetra = 1 - np.eye(4)
    xy = mds(tetra)
    assert xy.shape == (4, 2) and np.isfinite(xy).all()
    got = pairwise_distances(xy)[np.triu_indices(4, 1)]
    assert not np.allclose(got, 1) and np.all(np.abs(got - 1) < 0.5)
    with pytest.raises(ValueError, match=r"expected \[k, k\]"):
        mds(np.zeros((2, 3)))


def test_classical_mds_is_exact_for_points_in_a_plane():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 2))
    xy = classical_mds(pairwise_distances(points))
    assert np.allclose(pairwise_distances(xy), pairwise_distances(points))
    assert np.allclose(xy.mean(0), 0)


def test_similarity_measures_on_known_cases():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 5))
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    # CKA and RSA do not change under a rotation, nor CKA under isotropic scaling
    assert linear_cka(x, x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x) == pytest.approx(1.0)
    sim = similarity_matrix(x)
    assert sim.shape == (20, 20) and np.allclose(np.diag(sim), 1)
    assert rsa_similarity(sim, similarity_matrix(x @ rotation)) == pytest.approx(1.0)
    p = pairwise([x, x @ rotation, rng.normal(size=(20, 3))])
    assert np.allclose(p["distance"][:2, :2], 0, atol=1e-12)
    assert p["distance"][0, 2] > 0.1 and np.allclose(p["distance"], p["distance"].T)
