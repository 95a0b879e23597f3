"""Runs inside the billing virtualenv (.venv-billing), not the agent's.

The billing test talks to Gnocchi and CloudKitty as processes; this
script is the part of the rig that must import them:

* ``serve gnocchi|cloudkitty CONFIG PORT``: the service's WSGI app on
  127.0.0.1:PORT in a threaded server (gnocchi-api only execs uwsgi,
  which is not a dependency; cloudkitty-api is a WSGI app too);
* ``rating-tables CONFIG``: the hashmap and pyscripts tables created from
  the modules' models and their alembic heads stamped (their migrations
  fail on PostgreSQL in CloudKitty 25.0.0);
* ``rate CONFIG BEGIN SCOPE...``: one processing step of CloudKitty's
  own orchestrator worker for each scope, its state set so that the
  period starting at BEGIN (epoch seconds) is the next one to rate;
  cloudkitty-processor would start at the beginning of the month and
  then sleep a period between passes.

Only the standard library and the billing virtualenv are imported.
"""

import socketserver
import sys
from wsgiref import simple_server


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _Quiet(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _gnocchi_app(config):
    from gnocchi.cli import api
    from gnocchi.rest import app
    from gnocchi import service
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    api.opts.set_defaults()
    conf = service.prepare_service(args=['--config-file', config],
                                   conf=conf)
    return app.load_app(conf)


def _cloudkitty_conf(config):
    from cloudkitty import service
    service.prepare_service(['billing_helper', '--config-file', config])


def _cloudkitty_app(config):
    from cloudkitty.api import app
    from keystoneauth1 import loading
    from keystonemiddleware.auth_token import _opts
    from oslo_config import cfg
    # The hashmap API asks Keystone who created a rule whenever a request
    # carries a token, and reads keystone_authtoken options first even
    # with auth_strategy = noauth.  Without Keystone: register them
    # (unset) and drop the placeholder token the client's "none" auth
    # sends, so that CloudKitty records the creator as "unknown".
    cfg.CONF.register_opts(_opts._OPTS, group='keystone_authtoken')
    loading.register_auth_conf_options(cfg.CONF, 'keystone_authtoken')
    _cloudkitty_conf(config)
    application = app.setup_app()

    def without_token(environ, start_response):
        environ.pop('HTTP_X_AUTH_TOKEN', None)
        return application(environ, start_response)
    return without_token


def serve(kind, config, port):
    application = {'gnocchi': _gnocchi_app,
                   'cloudkitty': _cloudkitty_app}[kind](config)
    server = simple_server.make_server('127.0.0.1', int(port), application,
                                       server_class=_Server,
                                       handler_class=_Quiet)
    print('serving %s on 127.0.0.1:%s' % (kind, port), flush=True)
    server.serve_forever()


def rating_tables(config):
    from cloudkitty import db
    from cloudkitty.rating.hash.db.sqlalchemy import migration as hash_mig
    from cloudkitty.rating.hash.db.sqlalchemy import models as hash_models
    from cloudkitty.rating.pyscripts.db.sqlalchemy import (
        migration as py_mig)
    from cloudkitty.rating.pyscripts.db.sqlalchemy import (
        models as py_models)
    _cloudkitty_conf(config)
    for models, migration in ((hash_models, hash_mig), (py_models, py_mig)):
        with db.session_for_write() as session:
            models.Base.metadata.create_all(session.connection())
        migration.stamp('head')


def rate(config, begin, scopes):
    import datetime
    from cloudkitty import collector
    from cloudkitty import orchestrator
    from cloudkitty import storage
    from cloudkitty import storage_state
    from cloudkitty.utils import tz as tzutils
    from oslo_config import cfg
    _cloudkitty_conf(config)
    start = tzutils.utc_to_local(datetime.datetime.fromtimestamp(
        int(begin), datetime.timezone.utc))
    previous = tzutils.add_delta(
        start, datetime.timedelta(seconds=-cfg.CONF.collect.period))
    coll = collector.get_collector()
    store = storage.get_storage()
    state = storage_state.StateManager()
    for scope in scopes:
        # As if cloudkitty-processor had rated every earlier period: its
        # next period is then BEGIN, rated with the rules active then.
        state.set_last_processed_timestamp(scope, previous)
        worker = orchestrator.Worker(coll, store, scope, 0)
        if worker.next_timestamp_to_process() != start:
            raise SystemExit('period %s is not over yet' % start)
        worker.execute_worker_processing()
        print('rated %s from %s' % (scope, start.isoformat()), flush=True)


def main(argv):
    command, args = argv[0], argv[1:]
    if command == 'serve':
        serve(*args)
    elif command == 'rating-tables':
        rating_tables(*args)
    elif command == 'rate':
        rate(args[0], args[1], args[2:])
    else:
        raise SystemExit('unknown command %r' % command)


if __name__ == '__main__':
    main(sys.argv[1:])
