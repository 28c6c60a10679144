"""One run: build the loss, model and data from a Config, fit, evaluate, checkpoint, track.

`trainer.train(config)` reads top to bottom; `builders` turns the config into objects,
`callbacks` and `checkpoint` run at each epoch end, `tracking` owns the MLflow run.
"""

import training.quiet  # noqa: F401 (TensorFlow, imported quietly before Keras is)

