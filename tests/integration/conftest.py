"""Broker fixtures for the integration tests (defined in tests/broker.py)."""

from tests.helpers.broker import any_broker, embedded_broker, mosquitto
from tests.helpers.secure_broker import secure_network

__all__ = ["any_broker", "embedded_broker", "mosquitto", "secure_network"]
