"""TFaaS-compatible inference service: the original HTTP API, every framework the pipeline
trains (Keras, ONNX, scikit-learn via ONNX or skops, XGBoost), and dynamic batching.

`repository` keeps the uploaded models on disk, `uploads` checks and stores new ones,
`formats/` loads one model format each, `cache` keeps loaded models within `cacheLimit`,
`batching` groups concurrent predictions, `predict` is the hot `/json` path and `app` the rest
of the API.
"""
