"""tlpipe.models: Keras 3 model builders over TF-Hub feature vectors."""
