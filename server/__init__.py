"""The server: MQTT ingest into SQLAlchemy and the Flask dashboard."""
