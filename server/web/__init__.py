"""The Flask dashboard, one small module per concern:

- ``app``: the application factory (config, blueprints, error pages, security headers);
- ``context``: what every view shares: the app's state, the request's database session,
  the current time;
- ``params``: what a request asks for (dates, the device), read the same for pages and API;
- ``filters``: how durations, times and shares read (the Jinja filters);
- ``charts``: the geometry of the server-rendered SVG charts;
- ``settings_form``: the settings form in minutes and plain words, converted to and from
  TrackerSettings (seconds);
- blueprints, one per area: ``overview`` (/ and the drill guide), ``devices``
  (/devices, /devices/<id>), ``desk_settings`` (a device's settings, rename and pause),
  ``insights`` (/insights), ``api`` (JSON and CSV under /api/v1), ``auth`` (login);
- ``publish``: what the dashboard sends to desks over MQTT (settings, commands);
- ``static/live.js``: the pages' one script, which polls /api/v1/live to keep the seat
  state and today's figures current.
"""
