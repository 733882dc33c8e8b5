"""How far two response distributions are apart, and how undecided a classifier is.

The distances are scipy's (the `quality` extra): Kolmogorov-Smirnov (`ks_2samp`),
Wasserstein (`wasserstein_distance`), and the population stability index, which is the
symmetrised Kullback-Leibler divergence of the binned shares, so scipy's `rel_entr`
computes it: PSI = sum((p - q) ln(p / q)) = sum(rel_entr(p, q) + rel_entr(q, p)). PSI
takes scipy.special only: importing scipy.stats costs about 1.4 s of CPU, scipy.special
0.3 s, and promote's budget is tight. Only the binning is ours: the baseline's deciles
(or the shared histogram edges), the usual choice for PSI.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from ci_kit.errors import UsageError

EMPTY_BIN = 1e-4  # share given to an empty bin, so that PSI stays finite (the usual convention)


def _scipy(stats: bool = True) -> Any:
    try:
        import numpy
        import scipy.special

        if stats:
            import scipy.stats
    except ImportError:
        raise UsageError("the quality gate's response checks need scipy, which is not installed",
                         "pip install 'ci-kit[quality]' (scipy and matplotlib)") from None
    return numpy, (scipy.stats if stats else scipy.special)


class NotComparable(ValueError):
    """The two responses cannot be compared by this measure (said in the gate's line)."""


def shift(measure: str, cand: dict[str, Any], base: dict[str, Any], bins: int = 10) -> float:
    """The distance of the candidate's responses from the baseline's."""
    np, stats = _scipy(stats=measure != "psi")
    if measure == "ks":
        if "scores" not in cand or "scores" not in base:
            raise NotComparable("ks needs raw scores on both sides (a histogram was recorded): use psi or wasserstein")
        return float(stats.ks_2samp(cand["scores"], base["scores"]).statistic)
    if measure == "wasserstein":
        cv, cw = _values(np, cand)
        bv, bw = _values(np, base)
        return float(stats.wasserstein_distance(cv, bv, cw, bw))
    edges = _edges(np, cand, base, bins)
    p, q = _shares(np, cand, edges), _shares(np, base, edges)
    return float(np.sum(stats.rel_entr(p, q) + stats.rel_entr(q, p)))


def _values(np: Any, resp: dict[str, Any]) -> tuple[Any, Any]:
    """Scores with unit weights, or a histogram's bin centres weighted by their counts."""
    if "scores" in resp:
        return np.asarray(resp["scores"], dtype=float), None
    e = np.asarray(resp["histogram"]["edges"], dtype=float)
    return (e[:-1] + e[1:]) / 2, np.asarray(resp["histogram"]["counts"], dtype=float)


def _edges(np: Any, cand: dict[str, Any], base: dict[str, Any], bins: int) -> Any:
    hists = [r["histogram"]["edges"] for r in (cand, base) if "histogram" in r]
    if len(hists) == 2 and hists[0] != hists[1]:
        raise NotComparable("psi needs the same histogram edges on both sides")
    if hists:
        return np.asarray(hists[0], dtype=float)
    inner = np.unique(np.quantile(np.asarray(base["scores"], dtype=float), np.linspace(0, 1, bins + 1))[1:-1])
    return np.concatenate(([-np.inf], inner, [np.inf]))


def _shares(np: Any, resp: dict[str, Any], edges: Any) -> Any:
    if "histogram" in resp:
        counts = np.asarray(resp["histogram"]["counts"], dtype=float)
    else:
        counts = np.histogram(np.asarray(resp["scores"], dtype=float), bins=edges)[0].astype(float)
    shares = np.clip(counts / counts.sum(), EMPTY_BIN, None)
    return shares / shares.sum()


def undecided(resp: dict[str, Any], band: tuple[float, float]) -> float:
    """The share of responses in the middle band [low, high]; for a histogram, the share
    in the bins whose centre lies in the band (exact when the edges fall on the band)."""
    lo, hi = band
    if "scores" in resp:
        s = resp["scores"]
        return sum(1 for v in s if lo <= v <= hi) / len(s)
    e, c = resp["histogram"]["edges"], resp["histogram"]["counts"]
    inside = sum(n for (a, b), n in zip(pairwise(e), c, strict=False) if lo <= (a + b) / 2 <= hi)
    return float(inside / sum(c))  # the record is JSON (Any): say what comes back

