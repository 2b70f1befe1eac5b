"""The way out: read-only questions about the stored data, with no web or MQTT in them:
daily figures and timelines (``stats``), the nudge funnel and the other insights
(``insights``), who is paused now (``pauses``), what a desk answered to its settings
(``desk_answer``). Each takes a session and the desks the viewer may see (``scope``)."""
