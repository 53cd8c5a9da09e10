"""Heart-disease risk engine: cohort reading and validation, preprocessing, Keras MLP, evaluation,
SHAP explanations and model bundles. Never imports streamlit; TensorFlow is imported only where a
Keras model is built, trained or loaded, so reading and scoring stay light."""
__version__ = "0.1.0"
