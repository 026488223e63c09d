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
