"""The billing services on 127.0.0.1: PostgreSQL, Gnocchi, CloudKitty.

Owns their life for a test session: a private PostgreSQL cluster
(Debian's postgresql 15, run as the postgres user), Gnocchi's API
(PostgreSQL indexer, file storage, basic auth) and CloudKitty's API
(noauth, Gnocchi collector with basic auth, a static list of projects,
v1 sqlalchemy storage), each a process of the billing virtualenv
(tools/bootstrap-billing.sh) started here and stopped by its pid.  Also
runs the operator's commands against them as an operator would: the
shipped etc/ scripts through the real ``openstack`` client of that
virtualenv, ``ceilometer-upgrade`` from the agent's.

No Keystone, RabbitMQ or systemd; see billing_helper.py for what runs
inside the billing virtualenv.  Nothing here stubs a service: a service
that cannot start raises BillingError with its log.
"""

import base64
import datetime
import decimal
import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.rig import domains

ROOT = pathlib.Path(__file__).resolve().parents[2]
ETC = ROOT / 'etc'
HELPER = pathlib.Path(__file__).resolve().parent / 'billing_helper.py'
VENV_ENV = 'BILLING_VENV'
DEFAULT_VENV = ROOT / '.venv-billing'
PG_BIN = pathlib.Path('/usr/lib/postgresql/15/bin')
# What an operator runs once, in this order (doc/source/billing.rst).
RESOURCE_TYPE_SCRIPT = ETC / 'gnocchi' / 'resource-type-update.sh'
HASHMAP_SCRIPT = ETC / 'cloudkitty' / 'hashmap-example.sh'
MINIMUMS_SCRIPT = ETC / 'cloudkitty' / 'licence-minimums.sh'
HOST = '127.0.0.1'
GNOCCHI_USER = 'admin'
# CloudKitty's collect period in the test: five minutes, the granularity
# of Ceilometer's default archive policy (see rating_window).
PERIOD = 300
# The projects CloudKitty's source fetcher rates (tenant-a, tenant-b), as
# Keystone writes project ids: 32 hex digits (v1 storage keeps 32).
PROJECT_NAMES = ('tenant-a', 'tenant-b')
PROJECTS = tuple(domains.stable_uuid('project', name).replace('-', '')
                 for name in PROJECT_NAMES)


# hashmap-example.sh runs the openstack client ~35 times, each a Python
# start of a few seconds: 5 minutes were not enough on a busy 2-core host.
SCRIPT_TIMEOUT = 1200


class BillingError(RuntimeError):
    """A billing service or command failed; the message carries its log."""


def venv():
    """The billing virtualenv; BillingError if it is not installed."""
    path = pathlib.Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)
    for tool in ('python', 'openstack', 'gnocchi-upgrade',
                 'cloudkitty-dbsync'):
        if not (path / 'bin' / tool).exists():
            raise BillingError(
                'billing virtualenv %s lacks %s: run '
                'tools/bootstrap-billing.sh' % (path, tool))
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _tail(path, lines=40):
    try:
        text = pathlib.Path(path).read_text(errors='replace')
    except OSError:
        return ''
    return '\n'.join(text.splitlines()[-lines:])


def run(argv, log, env=None, timeout=300, cwd=None):
    """Run a command, its output appended to ``log``; stdout returned."""
    with open(log, 'ab') as err:
        err.write(('$ %s\n' % ' '.join(map(str, argv))).encode())
        err.flush()
        proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                              stderr=err, env=env, timeout=timeout, cwd=cwd)
    out = proc.stdout.decode(errors='replace')
    if proc.returncode:
        # oslo.log writes to stdout unless told otherwise
        raise BillingError('%s exited %d:\n%s\n%s' % (
            ' '.join(map(str, argv)), proc.returncode, _tail(log),
            '\n'.join(out.splitlines()[-40:])))
    return out


def wait_http(url, process, log, timeout=60.0, headers=None):
    """Until ``url`` answers (any status); BillingError if ``process``
    dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BillingError('%s died:\n%s' % (url, _tail(log)))
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise BillingError('%s does not answer:\n%s' % (url, _tail(log)))


def stop_pid(pid, sig=signal.SIGTERM, timeout=30.0):
    """Signal ``pid`` and wait until it is gone (SIGKILL after timeout);
    True if it was running."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


class Postgres:
    """A private cluster in ``directory``, owned by the postgres user.

    PostgreSQL refuses to run as root and its user must reach the data
    directory: the directory is outside pytest's 0700 tmp tree.
    """

    def __init__(self):
        self.directory = pathlib.Path(
            tempfile.mkdtemp(prefix='billing-pg-', dir='/tmp'))
        self.port = free_port()
        self.log = self.directory / 'postgresql.log'
        self.pid = None

    def _as_postgres(self, argv, timeout=120):
        account = pwd.getpwnam('postgres')

        def demote():
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        proc = subprocess.run([str(a) for a in argv], preexec_fn=demote,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout,
                              cwd=self.directory)
        if proc.returncode:
            raise BillingError('%s failed:\n%s\n%s' % (
                argv[0], proc.stdout.decode(errors='replace'),
                _tail(self.log)))

    def start(self):
        if not (PG_BIN / 'initdb').exists():
            raise BillingError('PostgreSQL 15 is not installed (Debian '
                               'package postgresql): run '
                               'tools/bootstrap-billing.sh')
        account = pwd.getpwnam('postgres')
        os.chmod(self.directory, 0o755)
        os.chown(self.directory, account.pw_uid, account.pw_gid)
        data = self.directory / 'data'
        self._as_postgres([PG_BIN / 'initdb', '-D', data, '--auth=trust',
                           '-U', 'postgres', '-E', 'UTF8',
                           '--locale=C.UTF-8'])
        self._as_postgres([
            PG_BIN / 'pg_ctl', '-D', data, '-l', self.log, '-w', '-o',
            '-p %d -k %s -c listen_addresses=%s' % (
                self.port, self.directory, HOST), 'start'])
        with open(data / 'postmaster.pid') as pidfile:
            self.pid = int(pidfile.readline())
        return self

    def url(self, database):
        return 'postgresql+psycopg2://postgres@%s:%d/%s' % (
            HOST, self.port, database)

    def create_database(self, name):
        self._as_postgres([
            '/usr/bin/psql', '-h', HOST, '-p', self.port, '-U', 'postgres',
            '-v', 'ON_ERROR_STOP=1', '-c', 'CREATE DATABASE %s' % name])

    def stop(self):
        if self.pid:
            # SIGINT: PostgreSQL's "fast" shutdown.
            stop_pid(self.pid, signal.SIGINT)
            self.pid = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _ini(sections):
    lines = []
    for section, values in sections.items():
        lines.append('[%s]' % section)
        lines.extend('%s = %s' % item for item in values.items())
        lines.append('')
    return '\n'.join(lines)


class Services:
    """PostgreSQL + Gnocchi + CloudKitty for ``projects``, in ``workdir``.

    ``start()`` brings everything up and creates Ceilometer's resource
    types; ``stop()`` stops every process it started, by pid.
    """

    def __init__(self, workdir, projects):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.projects = tuple(projects)
        self.venv = venv()
        self.postgres = Postgres()
        self.gnocchi_port = free_port()
        self.cloudkitty_port = free_port()
        self.processes = []
        self.log = self.workdir / 'commands.log'

    @property
    def gnocchi_url(self):
        return 'http://%s:%d' % (HOST, self.gnocchi_port)

    @property
    def cloudkitty_url(self):
        return 'http://%s:%d' % (HOST, self.cloudkitty_port)

    def bin(self, name):
        return self.venv / 'bin' / name

    # -- configuration files ------------------------------------------

    def gnocchi_conf(self):
        path = self.workdir / 'gnocchi.conf'
        path.write_text(_ini({
            'indexer': {'url': self.postgres.url('gnocchi')},
            'storage': {'driver': 'file',
                        'file_basepath': self.workdir / 'gnocchi-data'},
            # any user name, no password: Gnocchi without Keystone
            'api': {'auth_mode': 'basic'},
        }))
        return path

    def cloudkitty_conf(self, period=PERIOD, metrics_conf=None,
                        name='cloudkitty.conf'):
        """CloudKitty's configuration, by default with PERIOD and the
        shipped etc/cloudkitty/metrics.yml; another ``period`` and
        ``metrics_conf`` give a time-compressed copy in file ``name``."""
        path = self.workdir / name
        metrics_conf = metrics_conf or ETC / 'cloudkitty' / 'metrics.yml'
        path.write_text(_ini({
            'DEFAULT': {'auth_strategy': 'noauth',
                        'transport_url': 'fake://'},
            # SQLAlchemy 2.1: plain postgresql:// would want psycopg 3
            'database': {'connection': self.postgres.url('cloudkitty')},
            'collect': {'collector': 'gnocchi', 'period': period,
                        'wait_periods': 0, 'metrics_conf': metrics_conf},
            'collector_gnocchi': {'gnocchi_auth_type': 'basic',
                                  'gnocchi_user': GNOCCHI_USER,
                                  'gnocchi_endpoint': self.gnocchi_url},
            'fetcher': {'backend': 'source'},
            'fetcher_source': {'sources': ','.join(self.projects)},
            'storage': {'backend': 'sqlalchemy', 'version': 1},
        }))
        return path

    def ceilometer_credentials(self):
        """[service_credentials] for Ceilometer talking to this Gnocchi."""
        return {'auth_type': 'gnocchi-basic', 'user': GNOCCHI_USER,
                'endpoint': self.gnocchi_url}

    # -- processes ----------------------------------------------------

    def _serve(self, kind, conf, port):
        log = self.workdir / ('%s-api.log' % kind)
        with open(log, 'ab') as out:
            proc = subprocess.Popen(
                [str(self.bin('python')), '-W', 'ignore', str(HELPER),
                 'serve', kind, str(conf), str(port)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True)
        self.processes.append(proc)
        return proc, log

    def start(self):
        began = time.monotonic()
        self.postgres.start()
        for database in ('gnocchi', 'cloudkitty'):
            self.postgres.create_database(database)
        gnocchi = self.gnocchi_conf()
        run([self.bin('gnocchi-upgrade'), '--config-file', gnocchi],
            self.log)
        proc, log = self._serve('gnocchi', gnocchi, self.gnocchi_port)
        wait_http(self.gnocchi_url + '/v1/resource_type', proc, log,
                  headers=self.gnocchi_headers())
        cloudkitty = self.cloudkitty_conf()
        run([self.bin('cloudkitty-dbsync'), '--config-file', cloudkitty,
             'upgrade', '--module', 'cloudkitty'], self.log)
        run([self.bin('cloudkitty-storage-init'), '--config-file',
             cloudkitty], self.log)
        run([self.bin('python'), '-W', 'ignore', HELPER, 'rating-tables',
             cloudkitty], self.log)
        proc, log = self._serve('cloudkitty', cloudkitty,
                                self.cloudkitty_port)
        wait_http(self.cloudkitty_url + '/v1/rating/modules', proc, log)
        self.started_in = time.monotonic() - began
        return self

    def stop(self):
        """Stop what start() started; returns the problems as text."""
        problems = []
        for proc in reversed(self.processes):
            if proc.poll() is not None:
                problems.append('pid %d had exited with %s'
                                % (proc.pid, proc.returncode))
                continue
            stop_pid(proc.pid)
            proc.wait(10)
        self.processes = []
        self.postgres.stop()
        return problems

    # -- what an operator runs ----------------------------------------

    def gnocchi_headers(self):
        token = base64.b64encode(('%s:' % GNOCCHI_USER).encode()).decode()
        return {'Authorization': 'Basic ' + token}

    def client_env(self, service):
        """Environment for the ``openstack`` client against ``service``
        without Keystone."""
        env = dict(os.environ)
        env['PATH'] = '%s:%s' % (self.venv / 'bin', env.get('PATH', ''))
        for name in list(env):
            if name.startswith('OS_'):
                del env[name]
        if service == 'gnocchi':
            env.update(OS_AUTH_TYPE='gnocchi-basic', OS_USER=GNOCCHI_USER,
                       OS_ENDPOINT=self.gnocchi_url)
        else:
            # v1 storage turns CloudKitty's v2 API off
            env.update(OS_AUTH_TYPE='none', OS_ENDPOINT=self.cloudkitty_url,
                       OS_RATING_API_VERSION='1')
        return env

    def ceilometer_upgrade(self, agent_bin):
        """Ceilometer's own resource types and archive policies, as
        ``ceilometer-upgrade`` creates them (agent virtualenv)."""
        conf = self.workdir / 'ceilometer-upgrade.conf'
        conf.write_text(_ini({
            'service_credentials': self.ceilometer_credentials()}))
        run([pathlib.Path(agent_bin) / 'ceilometer-upgrade',
             '--config-file', conf], self.log)

    def operator_steps(self, agent_bin):
        """Ceilometer's resource types, then the shipped scripts (the
        resource-type one twice: the second run must add nothing);
        {step: what the operator's command printed}."""
        outputs = {}
        self.ceilometer_upgrade(agent_bin)
        outputs['resource-type'] = self.run_script(RESOURCE_TYPE_SCRIPT,
                                                   'gnocchi')
        outputs['resource-type-again'] = self.run_script(
            RESOURCE_TYPE_SCRIPT, 'gnocchi')
        outputs['hashmap'] = self.run_script(HASHMAP_SCRIPT, 'cloudkitty')
        outputs['minimums'] = self.run_script(MINIMUMS_SCRIPT, 'cloudkitty')
        return outputs

    def run_script(self, script, service):
        """A shipped etc/ script, unchanged, with the real client."""
        return run(['/bin/sh', script], self.log,
                   env=self.client_env(service), timeout=SCRIPT_TIMEOUT)

    def openstack(self, service, *args):
        return run([self.bin('openstack')] + list(args), self.log,
                   env=self.client_env(service))

    def gnocchi(self, path, body=None):
        """GET ``path`` of Gnocchi's API, or POST ``body`` as JSON."""
        headers = self.gnocchi_headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        request = urllib.request.Request(self.gnocchi_url + path, data=data,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def process_measures(self, resource_ids, metric):
        """Aggregate the measures waiting in Gnocchi's incoming storage
        now (what gnocchi-metricd does in the background)."""
        values = {}
        for resource_id in resource_ids:
            values[resource_id] = self.gnocchi(
                '/v1/resource/generic/%s/metric/%s/measures?refresh=true'
                % (resource_id, metric))
        return values

    def rate(self, begin, conf=None, projects=None):
        """One CloudKitty processing pass over the period starting at
        ``begin`` (epoch seconds) for every project (or ``projects``),
        with cloudkitty_conf() or ``conf``."""
        run([self.bin('python'), '-W', 'ignore', HELPER, 'rate',
             conf or self.cloudkitty_conf(), int(begin)] +
            list(projects or self.projects), self.log)

    def dataframes(self, begin, end=None, projects=None):
        """The rated periods from ``begin`` to ``end`` (default: one
        PERIOD) from CloudKitty's v1 storage API, for every project (or
        ``projects``): [{'project_id', 'service', 'qty', 'price', 'desc',
        'begin'}], 'begin' in epoch seconds."""
        end = begin + PERIOD if end is None else end
        query = urllib.parse.urlencode({
            'begin': _iso(begin), 'end': _iso(end)})
        rows = []
        for project in projects or self.projects:
            url = '%s/v1/storage/dataframes?%s&tenant_id=%s' % (
                self.cloudkitty_url, query, project)
            with urllib.request.urlopen(url, timeout=60) as response:
                frames = json.load(response)['dataframes']
            for frame in frames:
                for item in frame['resources']:
                    rows.append({
                        'project_id': frame['tenant_id'],
                        'service': item['service'],
                        'qty': decimal.Decimal(str(item['volume'])),
                        'price': decimal.Decimal(str(item['rating'])),
                        'desc': item['desc'],
                        'begin': epoch(frame['begin'])})
        return rows


def epoch(iso):
    """Epoch seconds of an ISO 8601 time (UTC if naive, as CloudKitty
    gives them)."""
    when = datetime.datetime.fromisoformat(iso.replace('Z', '+00:00'))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _iso(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S')


def rating_window(rules_created_at, now=None, margin=60.0):
    """(seconds to wait, period start) for samples taken after the wait.

    A CloudKitty rule applies to periods that start after its creation,
    and the samples and their Gnocchi resource must fall in the period
    that is rated: wait, if needed, for a period that starts after the
    rules and leaves ``margin`` seconds to take and publish the samples.
    """
    now = time.time() if now is None else now
    start = now - now % PERIOD
    if start >= rules_created_at and now - start <= PERIOD - margin:
        return 0.0, start
    start += PERIOD
    while start < rules_created_at:
        start += PERIOD
    return start - now + 1.0, start


def agent_bin():
    """The bin directory of the agent's virtualenv (this interpreter)."""
    return pathlib.Path(sys.executable).parent
