"""The Flask dashboard: the application factory (``app``), the pages' blueprints, the JSON
and CSV API (``api``), login (``auth``), and what it sends to desks (``publish``)."""
