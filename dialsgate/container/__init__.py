"""The serving image in a container engine: the engine, its client and network, the image (the
real one or the stand-in), the sandboxed worker container where model code runs, serving a
model folder as ``dismcli start-api`` does, and its peak memory."""
