"""What the command line knows before anything heavy is imported: the gate's layers in the order
they run, the DIALS instance its next steps name, the exit status of an argument error."""

LAYERS = ("fast", "parity", "server")

DEFAULT_DIALS_URL = "https://dev-cmsdials-api.web.cern.ch"

#: The exit status of a command line the gate cannot run (argparse's): nothing was judged or written.
ARGUMENT_ERROR = 2
