"""The serving image in a container engine: the engine and its network, the image (the real one
or the stand-in), serving a model folder as ``dismcli start-api`` does, and its peak memory."""
