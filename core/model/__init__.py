"""The risk model: configuration, preprocessing, the Keras trainer, the numpy network, recalibration, bundles and the store."""

from core.model.config import TrainConfig, stratified, split
from core.model.bands import BandCutoffs, risk_band
from core.model.network import ACTIVATIONS, Network
from core.model.preprocess import Preprocessor
from core.model.recalibration import METHODS, ISOTONIC_MIN_AUTO, Calibration, fit_platt, fit_isotonic, fit_calibration
from core.model.trainer import (
    epoch_metrics,
    build_keras_model,
    initial_weights,
    cached_trainer,
    XLA_MIN_STEPS,
    use_xla,
    networks_from_weights,
)
from core.model.estimator import BACKGROUND_ROWS, RiskModel, add_members, input_reference
from core.model.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, save_bundle, load_bundle
from core.model.store import (
    NAME,
    configure_root,
    store_root,
    check_name,
    list_models,
    save_model,
    delete_model,
    clean_stale,
)
from core.model.bundle_zip import (
    MAX_FILES,
    MAX_BYTES,
    MAX_RATIO,
    BUNDLE_MARKER,
    check_zip,
    extract_bundle_zip,
    bundle_to_zip,
)

__all__ = [
    "TrainConfig",
    "stratified",
    "split",
    "BandCutoffs",
    "risk_band",
    "ACTIVATIONS",
    "Network",
    "Preprocessor",
    "METHODS",
    "ISOTONIC_MIN_AUTO",
    "Calibration",
    "fit_platt",
    "fit_isotonic",
    "fit_calibration",
    "epoch_metrics",
    "build_keras_model",
    "initial_weights",
    "cached_trainer",
    "XLA_MIN_STEPS",
    "use_xla",
    "networks_from_weights",
    "BACKGROUND_ROWS",
    "RiskModel",
    "add_members",
    "input_reference",
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "save_bundle",
    "load_bundle",
    "NAME",
    "configure_root",
    "store_root",
    "check_name",
    "list_models",
    "save_model",
    "delete_model",
    "clean_stale",
    "MAX_FILES",
    "MAX_BYTES",
    "MAX_RATIO",
    "BUNDLE_MARKER",
    "check_zip",
    "extract_bundle_zip",
    "bundle_to_zip",
]
