"""Tests against real MQTT brokers (mosquitto and the embedded one)."""
