"""Ways in: the REST API, the command line and the UI's workspace facade; each catches FairsynthError once."""
