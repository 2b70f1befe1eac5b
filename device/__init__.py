"""The Pi-side agent: seat tracking, prompts, drill button, outbox and MQTT link."""
