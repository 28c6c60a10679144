"""A study of many runs: `compare` (losses × seeds), `tune` (an Optuna study per loss) and
`report` (statistics and figures read back from the MLflow store)."""
