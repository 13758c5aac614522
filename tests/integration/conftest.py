"""Broker fixtures for the integration tests (defined in tests/broker.py)."""

from tests.helpers.broker import any_broker, embedded_broker, mosquitto

__all__ = ["any_broker", "embedded_broker", "mosquitto"]
