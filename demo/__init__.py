"""The demo: the whole system on one machine (broker, server, weeks of history, simulated
desks). It sits above both sides: it runs the server and drives the device's parts."""
