"""Options: one group, operator-grade help, listed for the generator."""

import subprocess
import sys

from oslo_config import cfg

from ceilometer_os_pollster import options


def test_one_group_and_every_option_documented():
    groups = options.list_opts()
    assert [g for g, _ in groups] == ['os_inspection']
    names = set()
    for opt in groups[0][1]:
        assert opt.help and len(opt.help) >= 40, opt.name
        names.add(opt.name)
    # what the scheduler, engine and cache need
    for required in ('cache_dir', 'concurrency', 'appliance_memory_mb',
                     'inspection_deadline', 'libguestfs_backend_settings',
                     'record_ttl'):
        assert required in names


def test_options_register_and_parse_from_a_config_file(tmp_path):
    f = tmp_path / 'ceilometer.conf'
    f.write_text('[os_inspection]\nconcurrency = 2\n'
                 'libguestfs_backend_settings = force_tcg\n')
    conf = cfg.ConfigOpts()
    options.register_opts(conf)
    conf(['--config-file', str(f)])
    assert conf.os_inspection.concurrency == 2
    assert conf.os_inspection.libguestfs_backend_settings == ['force_tcg']
    assert conf.os_inspection.record_ttl == 86400


def test_oslo_config_generator_prints_the_sample():
    gen = subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator',
         '--namespace', 'ceilometer-os-pollster'],
        capture_output=True, text=True, check=True)
    out = gen.stdout
    assert '[os_inspection]' in out
    for opt in options.OPTS:
        assert '\n#%s =' % opt.name in out, opt.name
