"""Helpers shared by the tests, one of each: ``waiting.wait_until`` (poll real time with a
deadline), ``events.make_event`` (a valid event of any kind), ``desks.Desk`` (a whole
device service on mock pins), ``desks.LinkDesk`` (an MQTT link and its outbox alone) and
``browser`` (Chromium through playwright, and the app on a real HTTP server)."""
