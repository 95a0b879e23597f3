"""An in-memory filesystem for the tests of the path walker and of the
root readers (test_fs, test_linux_root, test_mounts, test_inspect)."""

from ceilometer_os_pollster.direct.filesystem import fs

# The first 64 bytes of an x86-64 ELF binary (libguestfs reads the
# architecture of /usr/bin/ls or /bin/ls from them).
ELF_X86_64 = (b'\x7fELF\x02\x01\x01' + bytes(9) + b'\x02\x00\x3e\x00'
              + bytes(44))


class Node:
    def __init__(self, kind, data=b'', children=None):
        self.kind = kind
        self.data = data
        self.children = children if children is not None else {}


class FakeFs(fs.Filesystem):
    """A filesystem from {path: bytes | '->target' str | None (dir)}.

    Counts lookups and bytes read, so tests can assert bounds.
    """

    kind = 'fake'

    def __init__(self, files):
        self.root = Node(fs.DIRECTORY)
        self.lookups = 0
        self.bytes_read = 0
        for path, content in sorted(files.items()):
            parts = [p for p in path.split('/') if p]
            node = self.root
            for part in parts[:-1]:
                node = node.children.setdefault(part.encode(),
                                                Node(fs.DIRECTORY))
            if content is None:
                leaf = Node(fs.DIRECTORY)
            elif isinstance(content, str) and content.startswith('->'):
                leaf = Node(fs.SYMLINK, content[2:].encode())
            else:
                leaf = Node(fs.FILE, content)
            node.children.setdefault(parts[-1].encode(), leaf)

    def lookup(self, dir_inode, name):
        self.lookups += 1
        return dir_inode.children.get(name)

    def kind_of(self, inode):
        return inode.kind

    def read(self, inode, limit):
        data = inode.data[:limit]
        self.bytes_read += len(data)
        return data

    def size(self, inode):
        return len(inode.data)

    def readlink(self, inode):
        return inode.data

    def key(self, inode):
        return id(inode)
