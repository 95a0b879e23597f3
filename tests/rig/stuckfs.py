"""A FUSE file system of the tests' own whose disk file stops answering.

``python -m tests.rig.stuckfs MOUNTPOINT`` serves one directory holding
``disk.raw``; any look-up of that file (stat, open) is received and never
answered, like a hung NFS server or a storage daemon that stopped.

``python -m tests.rig.stuckfs MOUNTPOINT --serve FILE --block-from N
--log LOG`` answers look-ups, open and the reads of ``disk.raw`` below
byte ``N`` with FILE's bytes, and never answers a read that reaches byte
``N``: storage that stops in the middle of an inspection's reading.
Each read is appended to LOG as ``served OFFSET SIZE`` or ``blocked
OFFSET SIZE`` before it is answered (or not).

A process blocked there cannot even be killed until this daemon goes
away (the kernel waits for an answer to a request already sent).
"""

import argparse
import errno
import os
import stat
import threading
import time

import fuse

DISK = '/disk.raw'


class StuckFS(fuse.Operations):

    def __init__(self, serve=None, block_from=0, log=None):
        self.serve = serve
        self.block_from = block_from
        self.log = log
        self._lock = threading.Lock()

    def _note(self, text):
        if self.log:
            with self._lock, open(self.log, 'a') as f:
                f.write(text + '\n')

    def getattr(self, path, fh=None):
        now = time.time()
        if path == '/':
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2,
                        st_atime=now, st_mtime=now, st_ctime=now)
        if path == DISK:
            if self.serve is None:
                threading.Event().wait()        # never answers
            return dict(st_mode=stat.S_IFREG | 0o444, st_nlink=1,
                        st_size=os.path.getsize(self.serve),
                        st_atime=now, st_mtime=now, st_ctime=now)
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return ['.', '..', DISK[1:]]

    def open(self, path, flags):
        if path != DISK or self.serve is None:
            raise fuse.FuseOSError(errno.ENOENT)
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise fuse.FuseOSError(errno.EROFS)
        return 0

    def read(self, path, size, offset, fh):
        if offset + size > self.block_from:
            self._note('blocked %d %d' % (offset, size))
            threading.Event().wait()            # never answers
        self._note('served %d %d' % (offset, size))
        with open(self.serve, 'rb') as f:
            f.seek(offset)
            return f.read(size)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('mountpoint')
    parser.add_argument('--serve')
    parser.add_argument('--block-from', type=int, default=0)
    parser.add_argument('--log')
    args = parser.parse_args()
    fuse.FUSE(StuckFS(args.serve, args.block_from, args.log),
              args.mountpoint, foreground=True, nothreads=False,
              allow_other=True, ro=True)


if __name__ == '__main__':
    main()
