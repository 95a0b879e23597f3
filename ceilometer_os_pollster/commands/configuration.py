"""The command's configuration and logging: the agent's options read
from its files, and where log records go (stderr, ``--log-file``, or
nowhere with ``--json``)."""

import logging
import sys

from oslo_config import cfg

from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster import options


def load_conf(config_files):
    """The agent's options from the given files (None: oslo.config's
    search for ceilometer.conf); CLIError(2) on any problem."""
    from ceilometer.compute import discovery
    from ceilometer.compute.virt.libvirt import utils as libvirt_utils

    conf = cfg.ConfigOpts()
    conf.register_opts(libvirt_utils.OPTS)
    conf.register_opts(discovery.OPTS, group='compute')
    options.register_opts(conf)
    try:
        conf(args=[], project='ceilometer', prog=errors.PROG,
             default_config_files=config_files or None,
             validate_default_values=True)
        # Values are checked on access: read them all now, so that a bad
        # one is a configuration error and not a crash half-way.
        for opt in options.OPTS:
            getattr(conf[options.GROUP], opt.dest)
        for name in ('libvirt_uri', 'libvirt_type'):
            getattr(conf, name)
        getattr(conf.compute, 'report_stopped_instance_metrics')
    except (cfg.Error, ValueError) as exc:
        raise errors.CLIError(errors.EXIT_USAGE,
                              'configuration error: %s' % exc)
    return conf


def setup_logging(json_mode, verbose=False, debug=False, log_file=None,
                  stream=None):
    """Route every log record: to stream (stderr) normally; to
    --log-file or nowhere with --json.  Returns the handler installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    level = (logging.DEBUG if debug else
             logging.INFO if verbose else logging.WARNING)
    if log_file:
        try:
            handler = logging.FileHandler(log_file, encoding='utf-8')
        except OSError as exc:
            raise errors.CLIError(errors.EXIT_USAGE,
                                  'cannot open log file %s: %s'
                                  % (log_file, exc.strerror or exc))
    elif json_mode:
        # A NullHandler keeps Python's last-resort stderr handler away.
        handler = logging.NullHandler()
        level = logging.CRITICAL + 1
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(
        '%(asctime)s %(levelname)s %(name)s: %(message)s'))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
