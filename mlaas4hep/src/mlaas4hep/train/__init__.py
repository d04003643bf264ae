"""Training any model on the chunks: user model files or built-ins, four frameworks."""
