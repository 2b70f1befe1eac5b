"""The Flask dashboard: the application factory (``app``), the pages' blueprints, the JSON
and CSV API (``api``), login (``auth``), what it sends to desks (``publish``) and what they
answered to their settings (``desk_answer``)."""
