"""sitwatch: a Raspberry Pi sitting-time monitor. This package is what both sides share and
imports neither: the wire protocol, MQTT connection settings, the settings model, clocks,
the local-day calendar, the drill; the device agent is ``sitwatch.device``, the server
``sitwatch.server``, the demo ``sitwatch.demo``."""

__version__ = "0.1.0"
