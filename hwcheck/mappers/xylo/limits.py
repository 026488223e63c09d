"""Xylo limit names (the profile schema), cycle-model keys and the thresholds of the warnings."""

from __future__ import annotations

from hwcheck.profiles import FigureSpec

DEFAULT_DT_S = 1e-3
QUANT_WARN_REL = 0.05  # warn above 5 % RMS relative weight error
TAU_WARN_PCT = 10.0  # warn above 10 % time-constant error
PASS_THROUGH_KINDS = ("identity", "reshape")

XYLO_LIMITS: dict[str, FigureSpec] = {
    "input_channels": FigureSpec("int", True, "SNN input channels"),
    "hidden_neurons": FigureSpec("int", True, "neurons of the hidden population"),
    "output_neurons": FigureSpec("int", True, "readout (output) neurons"),
    "output_neurons_warn": FigureSpec(
        "int", False, "output neurons above which the vendor DRC warns"
    ),
    "synaptic_states_hidden": FigureSpec("int", True, "synaptic states per hidden neuron"),
    "synaptic_states_output": FigureSpec("int", True, "synaptic states per output neuron"),
    "max_fanout_hidden": FigureSpec("int", True, "max nonzero outgoing weights per hidden neuron"),
    "input_projection_reach": FigureSpec(
        "int", True, "hidden neurons the input projection reaches"
    ),
    "readout_reach": FigureSpec("int", True, "hidden neurons the readout can read from"),
    "recurrent_weights_total": FigureSpec(
        "int", False, "fan-out entries of the whole recurrent weight memory (all hidden neurons)"
    ),
    "weight_bits": FigureSpec("int", True, "signed weight precision"),
    "threshold_bits": FigureSpec("int", False, "signed threshold precision"),
    "max_input_events_per_step": FigureSpec("int", True, "input events per channel per time step"),
    "max_spikes_per_step_hidden": FigureSpec("int", True, "spikes per hidden neuron per step"),
    "max_spikes_per_step_output": FigureSpec("int", True, "spikes per output neuron per step"),
    "clock_hz": FigureSpec("number", True, "main clock the real-time check assumes"),
    "clock_hz_max": FigureSpec("number", False, "fastest main clock"),
    # cycle model (rockpool power_cycles_model.cycles_model); all optional: without them the
    # real-time check is skipped.
    "cycles_input_per_channel": FigureSpec("number", False, "cycles per input channel per step"),
    "cycles_input_per_target": FigureSpec("number", False, "cycles per (input event, target)"),
    "cycles_hidden_fixed": FigureSpec("number", False, "fixed Isyn cycles per hidden neuron"),
    "cycles_hidden_per_synapse": FigureSpec(
        "number", False, "cycles per recurrent synapse of a spike"
    ),
    "cycles_readout_per_source": FigureSpec("number", False, "cycles per spiking readout source"),
    "cycles_readout_per_output": FigureSpec(
        "number", False, "cycles per readout synapse of a spike"
    ),
    "cycles_hidden_spike_fixed": FigureSpec(
        "number", False, "fixed spike cycles per hidden neuron"
    ),
    "cycles_hidden_spike_var": FigureSpec(
        "number", False, "spike cycles per hidden neuron x p_hid"
    ),
    "cycles_output_fixed": FigureSpec("number", False, "cycles per output neuron per step"),
    "cycles_margin": FigureSpec("number", False, "safety margin of the needed clock (fraction)"),
    "cycles_expansion_neurons": FigureSpec(
        "str",
        False,
        "'all_hidden' (Nien = Noen = Nhid) or 'connected' (neurons with nonzero weights)",
    ),
}

CYCLE_KEYS = (
    "cycles_input_per_channel",
    "cycles_input_per_target",
    "cycles_hidden_fixed",
    "cycles_hidden_per_synapse",
    "cycles_readout_per_source",
    "cycles_readout_per_output",
    "cycles_hidden_spike_fixed",
    "cycles_hidden_spike_var",
    "cycles_output_fixed",
)
