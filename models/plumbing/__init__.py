"""tlpipe.models.plumbing: what every layer shares, with nothing but the standard library.

Errors (`errors.py`: ConfigError(key, received, allowed) and the one-line
errors a user sees), atomic artifact I/O (`artifacts.py`), the example format
and the transform artifact's files (`example_format.py`), the names of the
files a step writes (`layout.py`) and what a person sees while tlpipe works
(`progress.py`). Why a package of its own: components and the pipeline need
these without Keras or TensorFlow, and they need nothing of tlpipe; a test
(tests/models/test_layering.py) checks that no module here imports anything
else of tlpipe or outside the standard library.
"""
