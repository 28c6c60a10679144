"""Is the tracking server there? One `/health` probe, standard library only, so the command
line can ask before TensorFlow's ~7 s import (`training.cli.exit_if_unreachable`)."""

from __future__ import annotations

import urllib.error
import urllib.request

from training.errors import TrackingError


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any training, when a tracking server does not answer.

    One GET of `/health` with a `timeout`-second limit (connect and read): a closed port fails
    at once, a socket that accepts but never answers after `timeout` s. Without this, MLflow's
    own client retries with back-off for minutes. Local stores (no http(s) URI) pass.
    """
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 (http(s) only)
            return
    except urllib.error.HTTPError:
        return  # it answered (auth proxies may refuse /health): reachable
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"tracking server {uri} is unreachable ({reason})") from None
