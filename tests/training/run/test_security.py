"""Security: no code evaluated from configs or checkpoints, no secret from the environment
recorded in a run."""

from __future__ import annotations

import ast
import json
import shutil
import zipfile
from pathlib import Path

import mlflow
import pytest

from training.config import Config, ConfigError, parse_overrides

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("training", "models", "losses")
SECRETS = {
    "LOSSLAB_FAKE_SECRET": "s3cr3t-losslab-7f1c9a",
    "AWS_SECRET_ACCESS_KEY": "AKIAFAKE/s3cr3t-aws-42b8e0",
    "MLFLOW_TRACKING_PASSWORD": "s3cr3t-mlflow-d41d8c",
}


# --- static: what the code never does ------------------------------------------------------


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            yield owner, name, node


def test_sources_never_evaluate_code_or_load_unsafely():
    problems = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for owner, name, node in _calls(tree):
                where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
                if not owner and name in ("eval", "exec", "compile", "__import__"):
                    problems.append(f"{where} calls {name}()")
                if owner == "yaml" and name in ("load", "unsafe_load", "full_load"):
                    problems.append(f"{where} yaml.{name} (use yaml.safe_load)")
                if owner in ("pickle", "marshal", "dill") and name in ("load", "loads"):
                    problems.append(f"{where} {owner}.{name}")
                if name == "enable_unsafe_deserialization":
                    problems.append(f"{where} enables unsafe Keras deserialization")
                for kw in node.keywords:
                    unsafe = isinstance(kw.value, ast.Constant) and kw.value.value is not True
                    if kw.arg == "safe_mode" and unsafe:
                        problems.append(f"{where} {name}(safe_mode={kw.value.value!r})")
    assert problems == []


# --- configs are parsed, never evaluated ---------------------------------------------------


def test_config_values_are_never_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = "__import__('os').system('touch pwned')"
    with pytest.raises(ConfigError, match="is not an integer"):
        parse_overrides([f"seed={payload}"])
    config = parse_overrides([f"run_name={payload}"])
    assert config.run_name == payload  # kept as the literal text
    assert Config.from_dict(json.loads(config.to_json())) == config
    assert not (tmp_path / "pwned").exists()


# --- a real run: no secret recorded; checkpoints restored without deserialising code -------


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory, new_store):
    """One 1-epoch run trained with fake secrets in the environment."""
    from training.train import train

    root = tmp_path_factory.mktemp("secret_run")
    uri = new_store(root / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in SECRETS.items():
            patch.setenv(key, value)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        config = Config(epochs=1, checkpoint_dir=str(root / "ckpt"))
        result = train(config)
    return uri, result["run_id"], config, root


@pytest.mark.slow
def test_no_environment_secret_in_the_run(secret_run):
    uri, run_id, _, root = secret_run
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    recorded = [
        *run.data.params.items(),
        *run.data.tags.items(),
        *((k, "") for k in run.data.metrics),
        *(
            (i.dataset.name, f"{i.dataset.source} {i.dataset.digest} {i.tags}")
            for i in run.inputs.dataset_inputs
        ),
    ]
    text = "\n".join(f"{k}={v}" for k, v in recorded)
    artifacts = Path(client.download_artifacts(run_id, "", str(root / "artifacts")))
    (model,) = client.search_logged_models([run.info.experiment_id])
    logged = Path(mlflow.artifacts.download_artifacts(f"models:/{model.model_id}",
                                                      dst_path=str(root / "model")))
    files = [p for p in [*artifacts.rglob("*"), *logged.rglob("*")] if p.is_file()]
    assert any(p.name == "config.json" for p in files) and any(p.name == "MLmodel" for p in files)
    for secret in SECRETS.values():
        assert secret not in text
        for path in files:  # every artifact, text or binary
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_checkpoint_restore_never_reads_the_archived_config(secret_run, tmp_path):
    """A tampered `last.keras` whose config asks for a Lambda layer (arbitrary code) restores
    weights only: the config is never deserialised, with or without Keras's safe_mode."""
    from training.run.builders import build_loss, build_model, build_optimizer
    from training.run.checkpoint import load_state
    from training.run.checkpoint import restore as restore_checkpoint

    _, run_id, config, _ = secret_run
    source = Path(config.checkpoint_dir) / run_id
    tampered = tmp_path / run_id
    tampered.mkdir()
    shutil.copy(source / "state.json", tampered / "state.json")
    lambda_layer = {"class_name": "Lambda", "config": {"function": {"class_name": "__lambda__",
                    "config": {"code": "4wEAAAAAAAAA"}}}}
    with zipfile.ZipFile(source / "last.keras") as src, zipfile.ZipFile(
        tampered / "last.keras", "w"
    ) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                data = json.dumps(lambda_layer).encode()
            dst.writestr(item, data)

    model = build_model(config, (8, 8, 1), 10)
    model.compile(optimizer=build_optimizer(config, 21), loss=build_loss(config, [0, 1], 10))
    restore_checkpoint(model, tampered, load_state(tampered))
    assert int(model.optimizer.iterations.numpy()) > 0
