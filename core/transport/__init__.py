"""MQTT for both sides: broker URLs and clients, the signed-peer session, the embedded broker."""
