"""What one LVM2 physical volume holds: its label and its metadata.

The 512-byte label (``LABELONE``) in one of the first four sectors, the
PV header after it (UUID, size, lists of data and metadata areas), the
metadata area header whose first ``raw_locn`` locates the committed
metadata in a circular text buffer, and that text, parsed by a small
bounded parser into nested dicts (pure), then ``read_pv`` (I/O).
Checksums are LVM's CRC-32 variant; the text's not matching is a torn
read.
"""

import dataclasses
import re
import struct
import zlib

from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import LimitReached
from ceilometer_os_pollster.direct.errors import TornRead
from ceilometer_os_pollster.direct.errors import Unsupported

SECTOR = 512
LABEL_SCAN_SECTORS = 4
LABEL_ID = b'LABELONE'
LABEL_TYPE = b'LVM2 001'
LABEL_HEADER = struct.Struct(
    '<8s'   # id: LABELONE
    'Q'     # sector_xl: the sector this label is in
    'I'     # crc_xl: from offset_xl to the end of the sector
    'I'     # offset_xl: from the label to the pv_header
    '8s')   # type: LVM2 001
LABEL_CRC_START = 20
PV_HEADER = struct.Struct(
    '<32s'  # pv_uuid
    'Q')    # device_size_xl (bytes)
DISK_LOCN = struct.Struct(
    '<Q'    # offset (bytes)
    'Q')    # size (bytes; 0 = to the end for a data area)
MDA_MAGIC = b' LVM2 x[5A%r0N*>'
MDA_HEADER_SIZE = 512
MDA_HEADER = struct.Struct(
    '<I'    # checksum_xl of the rest of the header
    '16s'   # magic
    'I'     # version
    'Q'     # start: absolute byte of this header
    'Q')    # size of the metadata area
RAW_LOCN = struct.Struct(
    '<Q'    # offset from the start of the area
    'Q'     # size (bytes)
    'I'     # checksum of the text
    'I')    # flags
RAW_LOCN_IGNORED = 0x1
INITIAL_CRC = 0xf597a6cf

MAX_AREAS = 8                     # data or metadata areas in one header
MAX_METADATA = 4 << 20            # bytes of metadata text
MAX_DEPTH = 16                    # nested sections
MAX_TOKENS = 1 << 20


def lvm_crc(data, crc=INITIAL_CRC):
    """LVM's calc_crc: CRC-32 with its own seed and no final inversion."""
    return zlib.crc32(data, crc ^ 0xffffffff) ^ 0xffffffff


# -- the label, the PV header and the metadata area (pure) ----------------

@dataclasses.dataclass(frozen=True)
class PvLabel:
    sector: int
    uuid: str                   # 32 characters, no dashes
    device_size: int
    data_areas: tuple           # (offset, size) pairs
    metadata_areas: tuple


def find_label(head):
    """The PV label in the first four sectors (``head``), or None."""
    for sector in range(LABEL_SCAN_SECTORS):
        data = head[sector * SECTOR:(sector + 1) * SECTOR]
        if len(data) < SECTOR or data[:8] != LABEL_ID:
            continue
        return parse_label(data, sector)
    return None


def parse_label(data, sector):
    label_id, where, crc, offset, label_type = LABEL_HEADER.unpack_from(data)
    if where != sector:
        raise Corrupt('lvm: label in sector %d says it is in sector %d'
                      % (sector, where))
    if lvm_crc(data[LABEL_CRC_START:SECTOR]) != crc:
        raise Corrupt('lvm: PV label checksum mismatch')
    if label_type != LABEL_TYPE:
        raise Unsupported('lvm: PV label type %r is not LVM2'
                          % label_type.decode('ascii', 'replace'))
    if not LABEL_HEADER.size <= offset <= SECTOR - PV_HEADER.size:
        raise Corrupt('lvm: PV header offset %d is invalid' % offset)
    uuid, device_size = PV_HEADER.unpack_from(data, offset)
    pos = offset + PV_HEADER.size
    lists = []
    for _ in range(2):                      # data areas, metadata areas
        areas = []
        while True:
            if pos + DISK_LOCN.size > SECTOR:
                raise Corrupt('lvm: PV header area lists overrun the label')
            area = DISK_LOCN.unpack_from(data, pos)
            pos += DISK_LOCN.size
            if area[0] == 0:
                break
            if len(areas) >= MAX_AREAS:
                raise LimitReached('lvm: more than %d areas in a PV header'
                                   % MAX_AREAS)
            areas.append(area)
        lists.append(tuple(areas))
    return PvLabel(sector, uuid.decode('ascii', 'replace'), device_size,
                   lists[0], lists[1])


@dataclasses.dataclass(frozen=True)
class MdaHeader:
    start: int
    size: int
    locns: tuple                # (offset, size, checksum, flags)


def parse_mda_header(data, start, area_size):
    """The metadata area header at byte ``start`` of the PV (pure)."""
    checksum, magic, version, where, size = MDA_HEADER.unpack_from(data)
    if magic != MDA_MAGIC:
        raise Corrupt('lvm: no metadata area header at byte %d' % start)
    if lvm_crc(data[4:MDA_HEADER_SIZE]) != checksum:
        raise TornRead('lvm: metadata area header checksum mismatch')
    if version != 1:
        raise Unsupported('lvm: metadata area version %d' % version)
    if where != start or size != area_size or size <= MDA_HEADER_SIZE:
        raise Corrupt('lvm: metadata area header disagrees with the PV '
                      'header (start %d, size %d)' % (where, size))
    locns = []
    pos = MDA_HEADER.size
    while pos + RAW_LOCN.size <= MDA_HEADER_SIZE:
        locn = RAW_LOCN.unpack_from(data, pos)
        pos += RAW_LOCN.size
        if locn[0] == 0:
            break
        locns.append(locn)
    return MdaHeader(where, size, tuple(locns))


def text_ranges(mda, locn):
    """Where the text of ``locn`` is, as (offset, length) within the area:
    one range, or two when it wraps round the circular buffer (pure)."""
    offset, size = locn[0], locn[1]
    if not MDA_HEADER_SIZE <= offset < mda.size:
        raise Corrupt('lvm: metadata text at offset %d is outside its area'
                      % offset)
    if size > MAX_METADATA:
        raise LimitReached('lvm: metadata text of %d bytes is more than '
                           '%d MiB' % (size, MAX_METADATA >> 20))
    if size > mda.size - MDA_HEADER_SIZE:
        raise Corrupt('lvm: metadata text of %d bytes is larger than its '
                      'area' % size)
    first = min(size, mda.size - offset)
    ranges = [(offset, first)]
    if first < size:
        ranges.append((MDA_HEADER_SIZE, size - first))
    return ranges


# -- the text format (pure) ---------------------------------------------

_TOKEN = re.compile(rb'''
    (?P<space>[ \t\r\n]+|\#[^\n]*)
  | (?P<punct>[{}\[\]=,])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?[0-9]+(?![0-9A-Za-z_.+\-]))
  | (?P<name>[A-Za-z0-9_.+\-:/@]+)
''', re.X | re.S)


def _tokens(text):
    pos = 0
    count = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise Corrupt('lvm: metadata text has an invalid character at '
                          'byte %d' % pos)
        pos = m.end()
        kind = m.lastgroup
        if kind == 'space':
            continue
        count += 1
        if count > MAX_TOKENS:
            raise LimitReached('lvm: metadata text has more than %d tokens'
                               % MAX_TOKENS)
        yield kind, m.group()


def _unquote(raw):
    return re.sub(rb'\\(.)', rb'\1', raw[1:-1]).decode('utf-8', 'replace')


class _Parser:
    def __init__(self, text):
        self._tokens = _tokens(text)
        self._next = None
        self._advance()

    def _advance(self):
        self._next = next(self._tokens, (None, None))

    def _take(self, kind=None, value=None):
        tok = self._next
        if tok[0] is None or (kind and tok[0] != kind) or (
                value is not None and tok[1] != value):
            raise Corrupt('lvm: metadata text is malformed near %r'
                          % (tok[1] or b'the end')[:40].decode('ascii',
                                                               'replace'))
        self._advance()
        return tok

    def section(self, depth, closing):
        if depth > MAX_DEPTH:
            raise LimitReached('lvm: metadata nests more than %d sections'
                               % MAX_DEPTH)
        items = {}
        while True:
            kind, value = self._next
            if kind is None and closing is None:
                return items
            if kind == 'punct' and value == closing:
                self._advance()
                return items
            kind, raw = self._take()
            if kind not in ('name', 'number', 'string'):
                raise Corrupt('lvm: metadata text is malformed near %r'
                              % raw[:40].decode('ascii', 'replace'))
            key = _unquote(raw) if kind == 'string' else raw.decode(
                'utf-8', 'replace')
            if key in items:
                raise Corrupt('lvm: metadata names %r twice' % key[:64])
            punct = self._take('punct')[1]
            if punct == b'{':
                items[key] = self.section(depth + 1, b'}')
            elif punct == b'=':
                items[key] = self.value()
            else:
                raise Corrupt('lvm: metadata text is malformed after %r'
                              % key[:64])

    def value(self):
        kind, raw = self._take()
        if kind == 'string':
            return _unquote(raw)
        if kind == 'number':
            return int(raw)
        if kind == 'punct' and raw == b'[':
            out = []
            if self._next == ('punct', b']'):
                self._advance()
                return out
            while True:
                kind, raw = self._take()
                if kind == 'string':
                    out.append(_unquote(raw))
                elif kind == 'number':
                    out.append(int(raw))
                else:
                    raise Corrupt('lvm: metadata array is malformed')
                kind, raw = self._take('punct')
                if raw == b']':
                    return out
                if raw != b',':
                    raise Corrupt('lvm: metadata array is malformed')
        if kind == 'name':                  # unquoted words (e.g. floats)
            return raw.decode('utf-8', 'replace')
        raise Corrupt('lvm: metadata value is malformed')


def parse_text(text):
    """The metadata text as nested dicts of str/int/list values (pure)."""
    if len(text) > MAX_METADATA:
        raise LimitReached('lvm: metadata text of %d bytes is more than '
                           '%d MiB' % (len(text), MAX_METADATA >> 20))
    return _Parser(text.rstrip(b'\0')).section(0, None)


# -- reading (I/O) --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PhysicalVolume:
    label: PvLabel
    metadata: object            # parsed text (dict), or None: no copy here
    source: object


def read_pv(source):
    """The PV on ``source`` with its metadata, or None when it is not a
    PV.  A PV may carry no metadata copy (pvcreate --metadatacopies 0)."""
    head = source.read_at(0, min(source.size, LABEL_SCAN_SECTORS * SECTOR))
    label = find_label(head)
    if label is None:
        return None
    metadata = None
    errors = []
    for offset, size in label.metadata_areas:
        try:
            metadata = _read_area(source, offset, size)
        except (Corrupt, TornRead) as e:
            errors.append(e)
            continue
        if metadata is not None:
            break
    if metadata is None and errors:
        raise errors[0]
    return PhysicalVolume(label, metadata, source)


def _read_area(source, offset, size):
    if offset + size > source.size or size <= MDA_HEADER_SIZE:
        raise Corrupt('lvm: metadata area at byte %d (%d bytes) is not on '
                      'the PV' % (offset, size))
    mda = parse_mda_header(source.read_at(offset, MDA_HEADER_SIZE), offset,
                           size)
    if not mda.locns or mda.locns[0][3] & RAW_LOCN_IGNORED:
        return None
    locn = mda.locns[0]
    if locn[1] == 0:
        return None
    crc = INITIAL_CRC
    parts = []
    for off, length in text_ranges(mda, locn):
        part = source.read_at(offset + off, length)
        crc = lvm_crc(part, crc)
        parts.append(part)
    if crc != locn[2]:
        raise TornRead('lvm: metadata text checksum mismatch')
    return parse_text(b''.join(parts))
