"""OmniTensor node core: telemetry, store, node API, network sync. No UI in here."""

__version__ = "0.1.0"
