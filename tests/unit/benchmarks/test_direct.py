"""benchmarks/direct.py's scoring of the catalog group: what the old
script printed, why auto fell back, and the targets, on plain data."""

import types

from benchmarks import direct


def _vm(guest):
    return types.SimpleNamespace(guest=guest, label=guest)


def _auto_row(*guests):
    """An auto row: (guest, method, launches, reason) per VM."""
    return {'name': 'auto', 'vms': len(guests), 'per_vm': [
        {'guest': g, 'method': method, 'fell_back': direct.fell_back(why),
         'seconds': 0.3, 'cpu_s': 0.3,
         'mem': {'launches': launches, 'driver_mib': 36.0}}
        for g, method, launches, why in guests]}


def test_the_fall_back_reason_is_the_end_of_the_record_reason():
    assert direct.fell_back(
        'no operating system found on 1 disk; direct reading fell back: '
        'ext4: block size 2^30 KiB is not valid') == (
            'ext4: block size 2^30 KiB is not valid')
    assert direct.fell_back('no filesystem found on 1 disk') == ''
    assert direct.fell_back(None) == ''


def test_the_old_scripts_answer_is_its_last_json_line():
    assert direct._old_answer('noise\n[{"os_type": "linux"}]\n') == [
        {'os_type': 'linux'}]
    assert direct._old_answer('') is None
    assert direct._old_answer('Traceback (most recent call last):') is None
    assert direct._old_answer('{"os_type": "linux"}') is None


def test_printing_nothing_is_said_with_the_exit_status():
    proc = types.SimpleNamespace(
        returncode=1, stderr='Traceback...\nRuntimeError: launch failed\n')
    assert direct._said({}, proc) == (
        'nothing (exit 1: RuntimeError: launch failed)')


def test_the_old_scripts_unknown_agrees_with_a_guest_without_os():
    unknown = {'os_type': 'unknown', 'os_distro': 'unknown',
               'os_version_major': 0, 'os_version_minor': 0}
    assert direct.check_raw(_vm('blank'), unknown) == []
    # A Windows guest it cannot inspect is not billed as Windows.
    problems = direct.check_raw(_vm('windows-bad-cmd'), unknown)
    assert "os_type: want 'windows' got 'unknown'" in problems


def test_hostile_values_are_not_compared_field_for_field():
    found = {'os_type': 'windows', 'os_distro': 'windows',
             'os_version_major': 10, 'os_version_minor': 0,
             'os_product_name': 'whatever libguestfs made of it',
             'os_product_variant': 'Server'}
    assert direct.check_raw(_vm('hostile-registry'), found) == []


def test_guests_sent_to_the_appliance_and_the_launch_target():
    row = _auto_row(
        ('rhel-9.4', 'direct', 0, ''),
        ('corrupt-fs', 'appliance', 1,
         'x; direct reading fell back: ext4: block size'))
    assert direct.appliance_guests(row) == {'corrupt-fs':
                                            'ext4: block size'}
    goals = {goal.split(' (')[0]: met for goal, _, met in
             direct.targets_catalog([row], {}, 150)}
    allowed = set(direct.readme_fallbacks())
    assert goals['appliance launches only for the layouts the operations '
                 'guide lists'] \
        == ('corrupt-fs' in allowed)
    assert goals['CPU s per VM read directly < 1'] is True


def test_a_launch_outside_the_list_misses_the_target():
    row = _auto_row(('rhel-9.4', 'direct', 1, ''))
    goals = {goal.split(' (')[0]: met for goal, _, met in
             direct.targets_catalog([row], {}, 150)}
    assert goals['appliance launches only for the layouts the operations '
                 'guide lists'] \
        is False


def test_what_the_old_script_printed_reaches_the_terminal_cleaned():
    said = direct._said({'os_type': 'windows', 'os_distro': 'windows',
                         'os_version_major': 10, 'os_version_minor': 0,
                         'os_product_name': 'Windows\r\n\x1b[2J\u202eX'},
                        None)
    assert said.startswith('windows/windows 10.0 Windows')
    assert not any(c in said for c in '\r\n\x1b\u202e')
