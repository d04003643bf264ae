"""TFaaS-compatible inference service: the original HTTP API, every framework the pipeline
trains, and dynamic batching.

Served formats: ONNX (the pipeline's export for PyTorch, scikit-learn and XGBoost), Keras
`.keras` (the pipeline's Keras bundle; allow-listed layers, self-contained weights, safe_mode),
XGBoost JSON/UBJSON and scikit-learn through skops. TensorFlow graphs (SavedModel folders,
frozen `.pb`) are refused, since their operations can read and write files: a Keras model is
served from its `model.keras`, or as ONNX.

`repository` keeps the uploaded models on disk, `uploads` checks and stores new ones,
`formats/` loads one model format each, `runner` is the process a model runs in and
`model_process` the server's side of it (time limits, restarts), `cache` keeps loaded models
within `cacheLimit`, `batching` groups concurrent predictions, `predict` is the hot `/json`
path and `app` the rest of the API.
"""
