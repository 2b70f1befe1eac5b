"""sitwatch: a Raspberry Pi sitting-time monitor (device agent, MQTT protocol, server)."""

__version__ = "0.1.0"
