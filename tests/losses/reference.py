"""Slow, explicit NumPy references written from the spec (issue 2 §2), not from losses/.

Everything is float64 and loops over samples, pairs and triplets one at a time: these
loops are the specification the vectorised code is tested against.
"""

import math

import numpy as np


def log_softmax(z):
    m = max(z)
    return [v - m - math.log(sum(math.exp(u - m) for u in z)) for v in z]


def crossentropy(labels, logits):
    """−log p_y per sample."""
    return np.array([-log_softmax(list(z))[y] for y, z in zip(labels, logits, strict=True)])


def balanced_crossentropy(labels, logits, weights):
    """−w_y log p_y per sample."""
    ce = crossentropy(labels, logits)
    return np.array([weights[y] * c for y, c in zip(labels, ce, strict=True)])


def focal(labels, logits, gamma, alpha=None):
    """−α_y (1 − p_y)^γ log p_y per sample, α None (1), scalar or per class."""
    out = []
    for y, z in zip(labels, logits, strict=True):
        log_p = log_softmax(list(z))[y]
        p = math.exp(log_p)
        if alpha is None:
            a = 1.0
        elif np.ndim(alpha) == 0:
            a = float(alpha)
        else:
            a = alpha[y]
        out.append(-a * (1.0 - p) ** gamma * log_p)
    return np.array(out)


def class_weights(labels, num_classes, beta=None):
    """w_c ∝ 1/n_c (beta None) or (1 − β)/(1 − β^{n_c}); Σ_c (n_c/N) w_c = 1."""
    counts = [0] * num_classes
    for y in labels:
        counts[y] += 1
    raw = []
    for n in counts:
        raw.append(1.0 / n if beta is None else (1.0 - beta) / (1.0 - beta**n))
    total = len(labels)
    scale = sum(n / total * w for n, w in zip(counts, raw, strict=True))
    return [w / scale for w in raw]


def distance(a, b, kind):
    """One distance between two vectors."""
    if kind == "cosine":
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
        return 1.0 - sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)
    squared = sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
    return squared if kind == "squared" else math.sqrt(squared)


def distance_matrix(emb, kind):
    n = len(emb)
    return [[0.0 if i == j else distance(emb[i], emb[j], kind) for j in range(n)] for i in range(n)]


def _hinge(x, margin, soft):
    return math.log1p(math.exp(x)) if soft else max(x + margin, 0.0)


def triplet_terms(labels, emb, margin, mining, kind, soft):
    """List of (term value, hinge argument x) entering the loss's candidate set."""
    d = distance_matrix(np.asarray(emb, np.float64), kind)
    n = len(labels)
    terms = []
    for a in range(n):
        positives = [p for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        if not positives or not negatives:
            continue
        if mining == "hard":
            x = max(d[a][p] for p in positives) - min(d[a][k] for k in negatives)
            terms.append(x)
            continue
        for p in positives:
            if mining == "semi-hard":
                farther = [d[a][k] for k in negatives if d[a][k] > d[a][p]]
                d_an = min(farther) if farther else max(d[a][k] for k in negatives)
                terms.append(d[a][p] - d_an)
            else:
                for k in negatives:
                    terms.append(d[a][p] - d[a][k])
    return [(_hinge(x, margin, soft), x) for x in terms]


def triplet(labels, emb, margin=0.2, mining="semi-hard", kind="euclidean", soft=False):
    """The scalar triplet loss of the batch."""
    terms = triplet_terms(labels, emb, margin, mining, kind, soft)
    if mining == "all" and not soft:
        terms = [t for t in terms if t[0] > 0]
    return sum(t for t, _ in terms) / len(terms) if terms else 0.0


def triplet_active_fraction(labels, emb, margin, mining, kind, soft):
    terms = triplet_terms(labels, emb, margin, mining, kind, soft)
    return sum(1 for _, x in terms if x + margin > 0) / len(terms) if terms else 0.0


def pairs(labels):
    """Unordered pairs i < j split into (same-label, different-label) lists."""
    n = len(labels)
    same = [(i, j) for i in range(n) for j in range(i + 1, n) if labels[i] == labels[j]]
    diff = [(i, j) for i in range(n) for j in range(i + 1, n) if labels[i] != labels[j]]
    return same, diff


def mean_pair_distances(labels, emb, kind):
    d = distance_matrix(np.asarray(emb, np.float64), kind)
    same, diff = pairs(labels)
    pos = sum(d[i][j] for i, j in same) / len(same) if same else 0.0
    neg = sum(d[i][j] for i, j in diff) / len(diff) if diff else 0.0
    return pos, neg


def contrastive(labels, emb, margin=1.0, kind="euclidean"):
    d = distance_matrix(np.asarray(emb, np.float64), kind)
    same, diff = pairs(labels)
    pos = sum(d[i][j] ** 2 for i, j in same) / len(same) if same else 0.0
    neg = sum(max(margin - d[i][j], 0.0) ** 2 for i, j in diff) / len(diff) if diff else 0.0
    return pos + neg


def contrastive_active_fraction(labels, emb, margin, kind):
    d = distance_matrix(np.asarray(emb, np.float64), kind)
    same, diff = pairs(labels)
    active = sum(1 for i, j in same if d[i][j] > 0) + sum(
        1 for i, j in diff if margin - d[i][j] > 0
    )
    return active / (len(same) + len(diff)) if same or diff else 0.0


def numeric_gradient(f, x, eps=1e-6):
    """Central finite differences of a scalar float64 function of an array."""
    x = np.asarray(x, np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


# --- long-tail losses (issue 11) ----------------------------------------------------------


def logit_adjusted(labels, logits, priors, tau):
    """−log softmax(z + τ·log π)_y per sample."""
    out = []
    for y, z in zip(labels, logits, strict=True):
        adjusted = [float(v) + tau * math.log(p) for v, p in zip(z, priors, strict=True)]
        out.append(-log_softmax(adjusted)[y])
    return np.array(out)


def ldam_margins(counts, max_margin):
    """Δ_c = max_margin · n_c^(−1/4) / max_k n_k^(−1/4)."""
    raw = [n**-0.25 for n in counts]
    return [max_margin * r / max(raw) for r in raw]


def ldam(labels, cosines, counts, max_margin, scale, weights=None):
    """−w_y log softmax(s · (z − Δ_y e_y))_y per sample."""
    margins = ldam_margins(counts, max_margin)
    out = []
    for y, z in zip(labels, cosines, strict=True):
        shifted = [scale * (float(v) - (margins[y] if c == y else 0.0)) for c, v in enumerate(z)]
        w = 1.0 if weights is None else weights[y]
        out.append(-w * log_softmax(shifted)[y])
    return np.array(out)


def poly1(labels, logits, epsilon):
    """−log p_y + ε (1 − p_y) per sample."""
    out = []
    for y, z in zip(labels, logits, strict=True):
        log_p = log_softmax([float(v) for v in z])[y]
        out.append(-log_p + epsilon * (1.0 - math.exp(log_p)))
    return np.array(out)


def labels_from_counts(counts):
    """[0]*n_0 + [1]*n_1 + ...: a label list with the given class counts."""
    labels = []
    for c, n in enumerate(counts):
        labels.extend([c] * n)
    return labels


# --- metric-learning losses on cosine similarities (issue 12) ---------------------------


def cosine_matrix(emb):
    """S_ij = cos(e_i, e_j) in float64, each row normalised first (a zero row stays zero)."""
    rows = []
    for e in np.asarray(emb, np.float64):
        norm = math.sqrt(sum(x * x for x in e))
        rows.append([x / norm for x in e] if norm > 0 else [0.0 for _ in e])
    return [[sum(x * y for x, y in zip(a, b, strict=True)) for b in rows] for a in rows]


def _logsumexp(values, add_one=False):
    """log(Σ e^v), or log(1 + Σ e^v) if add_one, without overflow."""
    values = list(values) + ([0.0] if add_one else [])
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def _positives_negatives(labels, i):
    n = len(labels)
    positives = [j for j in range(n) if j != i and labels[j] == labels[i]]
    negatives = [k for k in range(n) if labels[k] != labels[i]]
    return positives, negatives


def multi_similarity_terms(labels, emb, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1, mining=True):
    """{anchor: l_i} for every anchor with a kept positive and a kept negative."""
    s = cosine_matrix(emb)
    terms = {}
    for i in range(len(labels)):
        positives, negatives = _positives_negatives(labels, i)
        if not positives or not negatives:
            continue
        if mining:
            hardest_negative = max(s[i][k] for k in negatives)
            hardest_positive = min(s[i][j] for j in positives)
            positives = [j for j in positives if s[i][j] - epsilon < hardest_negative]
            negatives = [k for k in negatives if s[i][k] + epsilon > hardest_positive]
        if not positives or not negatives:
            continue
        pull = _logsumexp([-alpha * (s[i][j] - base) for j in positives], add_one=True) / alpha
        push = _logsumexp([beta * (s[i][k] - base) for k in negatives], add_one=True) / beta
        terms[i] = pull + push
    return terms


def multi_similarity(labels, emb, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1, mining=True):
    """Σ_i l_i / B."""
    terms = multi_similarity_terms(labels, emb, alpha, beta, base, epsilon, mining)
    return sum(terms.values()) / len(labels)


def circle_terms(labels, emb, margin=0.4, gamma=80.0, weights_from=None):
    """{anchor: l_i} for every anchor with a positive and a negative.

    `weights_from`: embeddings the weights α_p, α_n are computed from (default `emb`). Held
    fixed while `emb` moves, the finite differences of this function are the gradient of the
    stop-gradient loss; with the default they are the gradient Keras's Circle computes.
    """
    s = cosine_matrix(emb)
    w = s if weights_from is None else cosine_matrix(weights_from)
    terms = {}
    for i in range(len(labels)):
        positives, negatives = _positives_negatives(labels, i)
        if not positives or not negatives:
            continue
        pull = [-gamma * max(1 + margin - w[i][j], 0.0) * (s[i][j] - (1 - margin))
                for j in positives]
        push = [gamma * max(w[i][k] + margin, 0.0) * (s[i][k] - margin) for k in negatives]
        x = _logsumexp(push) + _logsumexp(pull)
        terms[i] = max(x, 0.0) + math.log1p(math.exp(-abs(x)))  # softplus
    return terms


def circle(labels, emb, margin=0.4, gamma=80.0, weights_from=None):
    """Mean of l_i over the anchors with a positive and a negative; 0 if there are none."""
    terms = circle_terms(labels, emb, margin, gamma, weights_from)
    return sum(terms.values()) / len(terms) if terms else 0.0


def supcon_terms(labels, emb, temperature=0.1):
    """{anchor: l_i} for every anchor with a positive (in a batch with a negative)."""
    s = cosine_matrix(emb)
    n = len(labels)
    terms = {}
    for i in range(n):
        positives, negatives = _positives_negatives(labels, i)
        if not positives or not negatives:
            continue
        log_denominator = _logsumexp([s[i][a] / temperature for a in range(n) if a != i])
        log_probs = [s[i][p] / temperature - log_denominator for p in positives]
        terms[i] = -sum(log_probs) / len(positives)
    return terms


def supcon(labels, emb, temperature=0.1):
    """Mean of l_i over the anchors with a positive; 0 if there are none."""
    terms = supcon_terms(labels, emb, temperature)
    return sum(terms.values()) / len(terms) if terms else 0.0


# --- proxy-based losses (issue 12): cosines (B, C) to one proxy per class ---------------


def proxy_cosines(emb, proxies):
    """cos(x_i, p_c) for embeddings (B, D) and proxies stored as columns of a (D, C) matrix."""
    emb, proxies = np.asarray(emb, np.float64), np.asarray(proxies, np.float64)
    out = np.zeros((len(emb), proxies.shape[1]))
    for i, x in enumerate(emb):
        for c in range(proxies.shape[1]):
            p = proxies[:, c]
            nx, n_p = math.sqrt(sum(v * v for v in x)), math.sqrt(sum(v * v for v in p))
            out[i, c] = sum(a * b for a, b in zip(x, p, strict=True)) / (nx * n_p)
    return out


def _scaled_ce(label, z, scale):
    return -log_softmax([scale * v for v in z])[label]


def arcface(labels, cosines, margin=0.5, scale=64.0):
    """Per sample: CE of scale·z, z_y = cos(θ_y + m) (insightface's fallback past π)."""
    out = []
    for y, row in zip(labels, np.asarray(cosines, np.float64), strict=True):
        z = list(row)
        c = min(max(z[y], -1.0), 1.0)
        if c > math.cos(math.pi - margin):
            z[y] = c * math.cos(margin) - math.sqrt(1.0 - c * c) * math.sin(margin)
        else:
            z[y] = c - margin * math.sin(math.pi - margin)
        out.append(_scaled_ce(y, z, scale))
    return np.array(out)


def cosface(labels, cosines, margin=0.35, scale=64.0):
    """Per sample: CE of scale·z, z_y = c_y − m."""
    out = []
    for y, row in zip(labels, np.asarray(cosines, np.float64), strict=True):
        z = list(row)
        z[y] -= margin
        out.append(_scaled_ce(y, z, scale))
    return np.array(out)


def proxy_anchor(labels, cosines, alpha=32.0, delta=0.1):
    """The batch's Proxy-Anchor loss (a scalar), proxy by proxy, sample by sample."""
    cosines = np.asarray(cosines, np.float64)
    num_proxies = cosines.shape[1]
    pos_total, neg_total, with_positives = 0.0, 0.0, 0
    for p in range(num_proxies):
        pos, neg = [], []
        for i, y in enumerate(labels):
            if y == p:
                pos.append(math.exp(-alpha * (cosines[i, p] - delta)))
            else:
                neg.append(math.exp(alpha * (cosines[i, p] + delta)))
        if pos:
            with_positives += 1
            pos_total += math.log(1.0 + sum(pos))
        neg_total += math.log(1.0 + sum(neg))
    return pos_total / with_positives + neg_total / num_proxies


def smoothed_crossentropy(labels, logits, epsilon):
    """−Σ_c q_c log p_c per sample, q = (1 − ε) one-hot(y) + ε / C."""
    out = []
    for y, z in zip(labels, logits, strict=True):
        log_p = log_softmax(list(z))
        q = [(1.0 - epsilon) * (c == y) + epsilon / len(z) for c in range(len(z))]
        out.append(-sum(qc * lp for qc, lp in zip(q, log_p, strict=True)))
    return np.array(out)
