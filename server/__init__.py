"""The server, in three parts along the data flow: ``ingest`` (MQTT in, checked and derived
rows stored, acks out), ``queries`` (read-only figures for a viewer's scope of desks) and
``web`` (the Flask dashboard and API). Shared by them: ``config``, ``models``, ``db`` (the
engine), ``sql`` (each SQL dialect difference, once), ``migrate``, ``users``, ``desks`` (the
desks' broker logins) and ``cli`` (``sitwatch-server``)."""
