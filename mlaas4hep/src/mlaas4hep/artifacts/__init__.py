"""What a run leaves behind: metrics, plots, exported models, the TFaaS bundle, the manifest."""
