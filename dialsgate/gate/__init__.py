"""The pre-deploy gate: the command line, running every layer, the verdict (terminal, JSON,
JUnit XML) and where it came from."""
