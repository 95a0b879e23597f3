"""InspectionService.stop(): ends the engine's inspections and says
once what outlived the bounded wait (issue 28)."""

import logging

from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from tests.helpers import inspection_conf


class StoppableEngine:
    def __init__(self, left):
        self.left = left
        self.stopped = []

    def inspect(self, job):
        return record.OSRecord.failed(job.instance_id, 'x')

    def stop(self, timeout):
        self.stopped.append(timeout)
        return 2, self.left


def make_service(tmp_path, engine):
    conf = inspection_conf(cache_dir=str(tmp_path))
    svc = service_mod.InspectionService(conf, engine=engine)
    svc.scheduler
    return svc


def test_service_stop_warns_once_naming_what_is_left(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    engine = StoppableEngine(['41 qemu-img (inst-1)', '40 python3 (inst-1)'])
    svc = make_service(tmp_path, engine)
    assert svc.stop(timeout=3) == engine.left
    assert engine.stopped == [3]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert warnings == [
        'OS inspection: 2 process(es) still alive 3 s after being killed '
        'at shutdown (stuck in the kernel, e.g. on hung storage): '
        '41 qemu-img (inst-1), 40 python3 (inst-1)']


def test_service_stop_is_quiet_when_all_is_gone(tmp_path, caplog):
    svc = make_service(tmp_path, StoppableEngine([]))
    assert svc.stop() == []
    assert not [r for r in caplog.records if r.levelname == 'WARNING']
