"""hwcheck: check a spiking neural network against neuromorphic chips before deploying it."""

from hwcheck.graph import INPUT, LayerGraph, LayerNode
from hwcheck.mappers.base import FitReport, Violation
from hwcheck.profiles import ChipProfile, ProfileError, list_profiles, load_profile

__version__ = "0.1.0"

__all__ = [
    "INPUT",
    "LayerGraph",
    "LayerNode",
    "FitReport",
    "Violation",
    "ChipProfile",
    "ProfileError",
    "list_profiles",
    "load_profile",
]

from hwcheck.graph import describe  # noqa: E402
from hwcheck.layers import LayerSpec, register_layer, register_neuron  # noqa: E402

__all__ += ["describe", "LayerSpec", "register_layer", "register_neuron"]
from hwcheck.activity import ActivityCounter, Analysis, analyze  # noqa: E402

__all__ += ["ActivityCounter", "Analysis", "analyze"]
from hwcheck.compat import SNNAnalyzer, SynOpCounter  # noqa: E402

__all__ += ["SNNAnalyzer", "SynOpCounter"]
from hwcheck.check import calibrate, check, compare, report  # noqa: E402
from hwcheck.report import Report  # noqa: E402

__all__ += ["calibrate", "check", "compare", "report", "Report"]
from hwcheck.nir_import import from_nir  # noqa: E402

__all__ += ["from_nir"]
from hwcheck.dataset import DatasetAnalysis, analyze_dataset  # noqa: E402
from hwcheck.events import recordings  # noqa: E402

__all__ += ["DatasetAnalysis", "analyze_dataset", "recordings"]
