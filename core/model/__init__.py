"""The risk model: configuration, preprocessing, the Keras trainer, the numpy network, recalibration, bundles and the store."""

from core.model.bands import DEFAULT_BANDS, BandCutoffs, band_summary, model_bands, risk_band
from core.model.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, load_bundle, save_bundle
from core.model.bundle_zip import (
    BUNDLE_MARKER,
    MAX_BYTES,
    MAX_FILES,
    MAX_RATIO,
    bundle_to_zip,
    check_zip,
    extract_bundle_zip,
)
from core.model.config import TrainConfig, split, stratified
from core.model.estimator import (
    BACKGROUND_ROWS,
    RiskModel,
    add_members,
    input_reference,
)
from core.model.network import ACTIVATIONS, Network
from core.model.preprocess import Preprocessor
from core.model.recalibration import (
    ISOTONIC_MIN_AUTO,
    METHODS,
    Calibration,
    fit_calibration,
    fit_isotonic,
    fit_platt,
)
from core.model.store import (
    NAME,
    bundle_digest,
    check_name,
    clean_stale,
    configure_root,
    delete_model,
    list_models,
    save_model,
    store_root,
    version_label,
)
from core.model.trainer import (
    XLA_MIN_STEPS,
    build_keras_model,
    cached_trainer,
    epoch_metrics,
    initial_weights,
    networks_from_weights,
    use_xla,
)

__all__ = [
    "TrainConfig",
    "stratified",
    "split",
    "BandCutoffs",
    "DEFAULT_BANDS",
    "band_summary",
    "model_bands",
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
    "bundle_digest",
    "version_label",
    "MAX_FILES",
    "MAX_BYTES",
    "MAX_RATIO",
    "BUNDLE_MARKER",
    "check_zip",
    "extract_bundle_zip",
    "bundle_to_zip",
]
