"""The paper's experiments as data (which runs, which teacher -> student pairs, which seeds)
and the runner that executes such a grid."""
