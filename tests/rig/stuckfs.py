"""A FUSE file system of the tests' own whose disk file never answers.

``python -m tests.rig.stuckfs MOUNTPOINT`` serves one directory holding
``disk.raw``; any look-up of that file (stat, open) is received and never
answered, like a hung NFS server or a storage daemon that stopped.  A
process blocked there cannot even be killed until this daemon goes away
(the kernel waits for an answer to a request already sent).
"""

import errno
import stat
import sys
import threading
import time

import fuse

DISK = '/disk.raw'


class StuckFS(fuse.Operations):

    def getattr(self, path, fh=None):
        now = time.time()
        if path == '/':
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2,
                        st_atime=now, st_mtime=now, st_ctime=now)
        if path == DISK:
            threading.Event().wait()        # never answers
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return ['.', '..', DISK[1:]]


def main():
    fuse.FUSE(StuckFS(), sys.argv[1], foreground=True, nothreads=False,
              allow_other=True)


if __name__ == '__main__':
    main()
