"""Our losses, one entry each: the catalogue every other part of the project reads.

Standard library only: each class is named by import path and imported on first use, so
`--help`, config validation and the compare can list losses, arguments and search spaces
without importing Keras (TensorFlow's import alone takes about 6 s). Defaults are declared
here and checked against the constructors by `tests/losses/test_catalog.py`, so they cannot
drift. A user's own loss joins the same table through `losses.register` or an import path
(`losses/registry.py`).

Adding a loss: one file in `losses/` and one `add(...)` below.
"""

from __future__ import annotations

from .spec import Arg, LossArgError, LossSpec

_REGISTRY: dict[str, LossSpec] = {}


class UnknownLoss(LossArgError):
    """No such registered loss, or an import path that does not name a Keras loss."""


def add(spec: LossSpec) -> LossSpec:
    """Registers `spec` under its name (a later entry with the same name replaces it)."""
    _REGISTRY[spec.name] = spec
    return spec


def remove(name: str) -> None:
    """Drops a registered name (for tests that register toy losses)."""
    _REGISTRY.pop(name, None)


def preset(name: str, of: str, summary: str = "", in_compare: bool = True, **fixed) -> LossSpec:
    """A named preset of a registered loss with some arguments fixed (`triplet_hard`)."""
    base = _REGISTRY[of]
    for key, value in fixed.items():
        base.arg(key).check(value)
    return LossSpec(
        name=name, target=base.target, task=base.task, output=base.output, needs=base.needs,
        args=tuple(a for a in base.args if a.name not in fixed),
        summary=summary or base.summary, reference=base.reference, preset_of=of,
        fixed=tuple(fixed.items()), in_compare=in_compare,
        trainer_fixed=tuple(k for k in fixed if base.arg(k).trainer) + base.trainer_fixed,
    )


def find(name: str) -> LossSpec | None:
    """The entry registered under `name`, or None (import paths are resolved by `losses.spec`)."""
    return _REGISTRY.get(name)


def specs(task: str | None = None) -> list[LossSpec]:
    """Every registered entry (presets included), in registration order."""
    return [s for s in _REGISTRY.values() if task in (None, s.task)]


def names(task: str | None = None) -> list[str]:
    """Sorted registered names."""
    return sorted(s.name for s in specs(task))


def unknown(name: str) -> UnknownLoss:
    return UnknownLoss(
        f"unknown loss {name!r}; known losses: {', '.join(names())}, or a "
        "'module:Class' import path of your own keras.losses.Loss"
    )


# --- the entries ------------------------------------------------------------------------
# Tuning ranges follow what the papers sweep; an argument without `search` is not tuned.
MINING = ("semi-hard", "hard", "all")  # losses/triplet.py checks against these
DISTANCES = ("euclidean", "squared", "cosine")  # losses/distances.py checks against these

add(LossSpec(
    name="ce", target="losses.crossentropy:Crossentropy", task="classification",
    output="logits", summary="cross entropy, −log p_y (−Σ_c q_c log p_c, q smoothed by ε)",
    args=(Arg("label_smoothing", float, 0.0, "ε: target mass spread evenly over the classes",
              low=0.0, high=1.0, high_open=True, search=("choice", (0.0, 0.05, 0.1, 0.2))),),
))
add(LossSpec(
    name="balanced_ce", target="losses.balanced:BalancedCrossentropy", task="classification",
    output="logits", needs="labels",
    summary="−w_y log p_y, w_c ∝ 1/n_c (or Cui et al. effective number with `beta`)",
    args=(Arg("beta", float, None, "none = inverse frequency; else Cui et al. effective number",
              low=0.0, high=1.0, high_open=True, optional=True,
              search=("choice", (None, 0.99, 0.999, 0.9999))),),
))
add(LossSpec(
    name="focal", target="losses.focal:FocalLoss", task="classification", output="logits",
    summary="−α_y (1 − p_y)^γ log p_y, weight on hard examples (`gamma`, `alpha`)",
    args=(Arg("gamma", float, 2.0, "focusing parameter; 0 = cross entropy", low=0.0,
              search=("float", 0.0, 5.0)),
          Arg("alpha", float, None, "scalar class weight (none = 1)", low=0.0, low_open=True,
              optional=True)),
))
add(LossSpec(
    name="triplet", target="losses.triplet:TripletLoss", task="retrieval", output="embedding",
    summary="max(d(a,p) − d(a,n) + margin, 0) with `mining` = semi-hard, hard, all",
    args=(Arg("margin", float, 0.2, "hinge margin", low=0.0, search=("float", 0.05, 0.5)),
          Arg("mining", str, "semi-hard", "which triplets a batch contributes", choices=MINING),
          Arg("distance", str, "euclidean", "embedding distance", choices=DISTANCES),
          Arg("soft", bool, False, "softplus instead of the hinge")),
))
add(preset("triplet_hard", of="triplet", mining="hard",
           summary="triplet with batch-hard mining (Hermans et al.)"))
add(LossSpec(
    name="contrastive", target="losses.contrastive:ContrastiveLoss", task="retrieval",
    output="embedding", summary="d² for same-class pairs, max(margin − d, 0)² for others",
    args=(Arg("margin", float, 1.0, "margin of different-class pairs", low=0.0,
              search=("float", 0.3, 1.5)),
          Arg("distance", str, "euclidean", "embedding distance", choices=DISTANCES)),
))

# --- long-tail losses -------------------------------------------------------------------
add(LossSpec(
    name="logit_adjusted", target="losses.logit_adjusted:LogitAdjustedCrossentropy",
    task="classification", output="logits", needs="labels",
    summary="−log softmax(z + τ log π)_y, π = training class shares (τ = 1: Balanced Softmax)",
    reference="Menon et al., ICLR 2021, arXiv:2007.07314",
    args=(Arg("tau", float, 1.0, "weight of the log-prior shift; 0 = cross entropy", low=0.0,
              search=("float", 0.5, 2.0)),),
))
add(LossSpec(
    name="ldam", target="losses.ldam:LDAMLoss", task="classification", output="cosine_logits",
    needs="labels", in_compare=False,  # the compare runs it as ldam_drw (Cao et al.'s recipe)
    summary="−w_y log softmax(s (z − Δ_y e_y))_y on cosine logits, Δ_c ∝ n_c^(−1/4)",
    reference="Cao et al., NeurIPS 2019, arXiv:1906.07413",
    args=(Arg("max_margin", float, 0.5, "margin of the rarest class", low=0.0,
              search=("float", 0.1, 1.0)),
          Arg("scale", float, 30.0, "scale s of the cosine logits", low=0.0, low_open=True,
              search=("log", 8.0, 64.0)),
          Arg("drw", bool, False, "deferred re-weighting from epoch floor(0.8*epochs)+1",
              trainer=True)),
))
add(preset("ldam_drw", of="ldam", drw=True,
           summary="LDAM, class weights w = drw_weights(n_c) from epoch floor(0.8·epochs)+1"))
add(LossSpec(
    name="cb_focal", target="losses.focal:FocalLoss", task="classification", output="logits",
    needs="labels",
    summary="focal with α_c ∝ (1 − β)/(1 − β^{n_c}) (class-balanced, Cui et al.)",
    reference="Cui et al., CVPR 2019, arXiv:1901.05555",
    args=(Arg("beta", float, 0.9999, "effective-number β; 0 = uniform α, → 1 inverse frequency",
              low=0.0, high=1.0, high_open=True, search=("choice", (0.99, 0.999, 0.9999))),
          Arg("gamma", float, 2.0, "focusing parameter; 0 = class-balanced CE", low=0.0,
              search=("float", 0.0, 5.0))),
))
add(LossSpec(
    name="poly", target="losses.poly:PolyLoss", task="classification", output="logits",
    summary="−log p_y + ε (1 − p_y) (Poly-1)",
    reference="Leng et al., ICLR 2022, arXiv:2204.12511",
    args=(Arg("epsilon", float, 1.0, "weight of (1 − p_y); 0 = cross entropy; below −1 the "
              "loss rises as p_y → 1", low=-1.0, search=("float", -1.0, 5.0)),),
))

# --- metric-learning losses -------------------------------------------------------------
add(LossSpec(
    name="multi_similarity", target="losses.multi_similarity:MultiSimilarityLoss",
    task="retrieval", output="embedding",
    summary="log(1 + Σ_p e^{−α(S − base)})/α + log(1 + Σ_n e^{β(S − base)})/β, mined pairs",
    reference="Wang et al., CVPR 2019, arXiv:1904.06627",
    args=(Arg("alpha", float, 2.0, "scale of the positive pairs", low=0.0, low_open=True,
              search=("log", 0.5, 10.0)),
          Arg("beta", float, 50.0, "scale of the negative pairs", low=0.0, low_open=True,
              search=("log", 10.0, 100.0)),
          Arg("base", float, 0.5, "similarity offset of both terms", low=-1.0, high=1.0,
              search=("float", 0.0, 1.0)),
          Arg("epsilon", float, 0.1, "mining margin", low=0.0, search=("float", 0.0, 0.3)),
          Arg("mining", bool, True, "keep only the pairs MS mining selects")),
))
add(LossSpec(
    name="circle", target="losses.circle:CircleLoss", task="retrieval", output="embedding",
    summary="softplus(lse_n γα_n(s_n − m) + lse_p −γα_p(s_p − 1 + m)), α under stop-gradient",
    reference="Sun et al., CVPR 2020, arXiv:2002.10857",
    args=(Arg("margin", float, 0.4, "relaxation m: optima 1 + m and −m", low=0.0,
              search=("float", 0.1, 0.5)),
          Arg("gamma", float, 80.0, "scale of the similarities", low=0.0, low_open=True,
              search=("log", 16.0, 256.0))),
))
add(LossSpec(
    name="supcon", target="losses.supcon:SupConLoss", task="retrieval", output="embedding",
    summary="−mean_p log softmax_{a≠i}(S_ia/τ)_p over each anchor's positives (L_out)",
    reference="Khosla et al., NeurIPS 2020, arXiv:2004.11362",
    args=(Arg("temperature", float, 0.1, "softmax temperature τ", low=0.0, low_open=True,
              search=("log", 0.03, 0.5)),),
))
# Proxy-based: the model ends in losses.ProxyHead(C), one learned proxy per training class.
add(LossSpec(
    name="arcface", target="losses.arcface:ArcFaceLoss", task="retrieval",
    output="proxy_cosines",
    summary="−log softmax(s·z)_y, z_y = cos(θ_y + m) on the cosines to class proxies",
    reference="Deng et al., CVPR 2019, arXiv:1801.07698",
    args=(Arg("margin", float, 0.5, "additive angular margin m (radians)", low=0.0,
              high=3.141592653589793, high_open=True, search=("float", 0.1, 0.8)),  # < π
          Arg("scale", float, 64.0, "scale s of the cosines", low=0.0, low_open=True,
              search=("log", 8.0, 64.0))),
))
add(LossSpec(
    name="cosface", target="losses.cosface:CosFaceLoss", task="retrieval",
    output="proxy_cosines",
    summary="−log softmax(s·z)_y, z_y = cos θ_y − m on the cosines to class proxies",
    reference="Wang et al., CVPR 2018, arXiv:1801.09414",
    args=(Arg("margin", float, 0.35, "additive cosine margin m", low=0.0,
              search=("float", 0.1, 0.5)),
          Arg("scale", float, 64.0, "scale s of the cosines", low=0.0, low_open=True,
              search=("log", 8.0, 64.0))),
))
add(LossSpec(
    name="proxy_anchor", target="losses.proxy_anchor:ProxyAnchorLoss", task="retrieval",
    output="proxy_cosines",
    summary="per proxy: log(1 + Σ_pos e^{−α(s − δ)}) + log(1 + Σ_neg e^{α(s + δ)}), batch mean",
    reference="Kim et al., CVPR 2020, arXiv:2003.13911",
    args=(Arg("alpha", float, 32.0, "scale α of the similarities", low=0.0, low_open=True,
              search=("log", 8.0, 64.0)),
          Arg("delta", float, 0.1, "margin δ", low=0.0, search=("float", 0.0, 0.3))),
))

# --- regression losses ------------------------------------------------------------------
# The head is a linear Dense(output_units(spec, args)) (losses/spec.py: value, quantiles,
# mean_logvar). Per-sample weights (weighted least squares) are Keras's `sample_weight`, so
# every entry below takes them. δ and min_variance are in target units (squared for σ²).
add(LossSpec(
    name="mse", target="losses.mse:MSELoss", task="regression", output="value",
    summary="mean (ŷ − y)², least squares (its minimiser is the conditional mean)", args=(),
    reference="Legendre 1805, Gauss 1809",
))
add(LossSpec(
    name="mae", target="losses.mae:MAELoss", task="regression", output="value",
    summary="mean abs(ŷ − y) (its minimiser is the conditional median)", args=(),
    reference="Boscovich 1757, Laplace 1789",
))
add(LossSpec(
    name="huber", target="losses.huber:HuberLoss", task="regression", output="value",
    summary="½e² for abs(e) ≤ δ, δ(abs(e) − ½δ) beyond, e = ŷ − y",
    reference="Huber, Ann. Math. Statist. 1964",
    args=(Arg("delta", float, 1.0, "δ: where the quadratic turns linear, in target units",
              low=0.0, low_open=True, search=("log", 0.1, 10.0)),),
))
add(LossSpec(
    name="log_cosh", target="losses.log_cosh:LogCoshLoss", task="regression", output="value",
    summary="log cosh(ŷ − y): ½e² near 0, abs(e) − log 2 far, smooth", args=(),
    reference="Saleh & Saleh, arXiv:2208.04564",
))
# Not in the default compare: its point prediction is only the median column, and what it
# is for (intervals) is not the compare's selection metric, val/rmse.
add(LossSpec(
    name="pinball", target="losses.pinball:PinballLoss", task="regression",
    output="quantiles", in_compare=False,
    summary="mean_τ max(τu, (τ − 1)u), u = y − ŷ_τ, one output per quantile τ",
    reference="Koenker & Bassett, Econometrica 1978",
    args=(Arg("quantiles", tuple, (0.1, 0.5, 0.9), "quantile levels τ, one output column each",
              low=0.0, high=1.0, low_open=True, high_open=True, increasing=True),
          Arg("crossing", float, 0.0, "λ: weight of Σ max(0, ŷ_τj − ŷ_τj+1); 0 = off", low=0.0,
              search=("choice", (0.0, 0.1, 1.0)))),
))
add(LossSpec(
    name="gaussian_nll", target="losses.gaussian_nll:GaussianNLLLoss", task="regression",
    output="mean_logvar",
    summary="sg(σ^{2β}) · ½(log σ² + (y − μ)²/σ²), head (μ, log σ²), σ² floored (β-NLL)",
    reference="Seitzer et al., ICLR 2022, arXiv:2203.09168",
    args=(Arg("beta", float, 0.5, "β: weight σ^{2β} under stop-gradient; 0 = plain NLL",
              low=0.0, high=1.0, search=("float", 0.0, 1.0)),
          Arg("min_variance", float, 1e-6, "floor of σ² (squared target units)", low=0.0,
              low_open=True)),
))
