"""The way in: an MQTT worker takes the desks' batches (``worker``), checks and stores each
event once, derives sessions, drills and daily rollups in the same transaction (``derive``,
with the bulk insert of ``sitwatch.server.sql`` for both databases), then acknowledges what
it stored; and keeps each desk's answer to its settings (``config_results``)."""
