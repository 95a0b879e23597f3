"""How the ``ceilometer-os-pollster`` command fails: its exit statuses
(``cli.EPILOG`` documents them) and the error that carries one."""

PROG = 'ceilometer-os-pollster'

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LIBVIRT = 3


class CLIError(Exception):
    """A failure of the command as a whole: a message and an exit code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message
