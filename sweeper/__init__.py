"""sweeper: Hydra sweeps of scikit-learn models, one shared preprocess, parallel trials, MLflow."""

__version__ = "0.1.0"
