"""SID list files and file names: which short and long exposures pair up, and their ratio.

A list line is `short long ISO F` with paths relative to the dataset folder, as in the authors'
Sony_*_list.txt. Every line is checked as a pair before anything trains on it, and a bad one is a
one-line error naming the list and line.
"""
import os
import re
from collections import namedtuple

import safe_files
from cli import SidError

MAX_RATIO = 300  # the paper caps the amplification ratio
SPLITS = {'train': 0, 'test': 1, 'val': 2}  # first digit of the scene id
Pair = namedtuple('Pair', 'short long iso fnumber line')
# `10019_00_0.033s.ARW`: 5-digit scene id, burst index, exposure in seconds.
NAME_RE = re.compile(r'^(\d{5})_(\d{2})_(\d+(?:\.\d+)?)s\.[A-Za-z0-9]+$')


def parse_name(path):
    """(scene_id, burst_index, exposure_seconds) from a SID file name."""
    m = NAME_RE.match(os.path.basename(path))
    if not m:
        raise SidError('%s: file name does not follow the SID scheme '
                       '<scene>_<burst>_<exposure>s.<ext> (e.g. 10019_00_0.033s.ARW)' % path)
    exposure = float(m.group(3))
    if exposure <= 0:
        raise SidError('%s: exposure in the file name must be positive' % path)
    return int(m.group(1)), int(m.group(2)), exposure


def exposure_ratio(short_path, long_path):
    """The paper's amplification: long / short exposure, capped at 300."""
    return min(parse_name(long_path)[2] / parse_name(short_path)[2], MAX_RATIO)


def read_list(list_path, data_dir, check_files=True):
    """Pairs of a SID list file (`short long ISO F` per line, paths relative to `data_dir`).

    Every line must make sense as a pair, or training would silently learn from it: the short
    exposure under no `long/` folder and the long one under no `short/` folder (columns swapped),
    both of the same scene, the short exposure strictly shorter (ratio long / short > 1), and no
    short exposure listed twice (it would be drawn twice as often).
    """
    pairs, listed = [], {}
    for number, text in enumerate(_read_text_lines(list_path), 1):
        if not text.strip():
            continue
        where = '%s:%d' % (list_path, number)
        fields = text.split()
        if len(fields) != 4:
            raise SidError('%s: expected 4 fields "short long ISO F", found %d'
                           % (where, len(fields)))
        short, long_, iso, fnumber = fields
        if not re.match(r'^ISO\d+$', iso) or not re.match(r'^F\d+(\.\d+)?$', fnumber):
            raise SidError('%s: ISO and F fields must look like ISO200 F8, found %s %s'
                           % (where, iso, fnumber))
        short, long_ = (os.path.normpath(os.path.join(data_dir, p)) for p in (short, long_))
        for path in (short, long_):
            try:
                parse_name(path)
            except SidError as e:
                raise SidError('%s: %s' % (where, e))
        _check_pair(where, short, long_)
        if short in listed:
            raise SidError('%s: short exposure %s is already paired on line %d'
                           % (where, short, listed[short]))
        listed[short] = number
        if check_files:
            for path in (short, long_):
                if not os.path.isfile(path):
                    raise SidError('%s: file not found: %s%s' % (where, path,
                                                                 other_list_hint(list_path,
                                                                                 data_dir)))
        pairs.append(Pair(short, long_, iso, fnumber, number))
    return pairs


def other_list_hint(list_path, data_dir):
    """'; pass <data_dir>/<name> ...' when the data folder has its own list of that name: the
    authors' list in the project root names the real SID files, the generated set's lists
    (scripts/make_dataset.py) live next to its raws."""
    own = os.path.join(data_dir, os.path.basename(list_path))
    if os.path.isfile(own) and os.path.abspath(own) != os.path.abspath(list_path):
        return ' (%s lists the files in %s: pass it as the list)' % (own, data_dir)
    return ''


def _read_text_lines(list_path):
    """The lines of a UTF-8 list file, without the byte-order mark some editors put first."""
    try:
        with open(list_path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise SidError('%s: cannot read list file (%s)' % (list_path, e.strerror or e))
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        # e.object is what was decoded (without a BOM); the text before the bad byte decodes,
        # and a character in the bad byte's place gives its line number.
        line = len((e.object[:e.start].decode('utf-8') + '?').splitlines())
        raise SidError('%s:%d: not a UTF-8 text list file (byte 0x%02x)'
                       % (list_path, line, e.object[e.start]))
    if '\0' in text:
        line = len(text[:text.index('\0') + 1].splitlines())
        raise SidError('%s:%d: not a text list file (NUL byte)' % (list_path, line))
    return text.splitlines()


def _check_pair(where, short, long_):
    for path, column, other in ((short, 'short', 'long'), (long_, 'long', 'short')):
        if os.path.basename(os.path.dirname(path)).lower() == other:
            raise SidError('%s: the %s-exposure column names %s, in a %s/ folder: are the two '
                           'columns swapped?' % (where, column, path, other))
    (short_scene, _, short_time), (long_scene, _, long_time) = parse_name(short), parse_name(long_)
    if short_scene != long_scene:
        raise SidError('%s: short exposure of scene %05d paired with the long exposure of scene '
                       '%05d' % (where, short_scene, long_scene))
    if not long_time > short_time:
        raise SidError('%s: short exposure %gs is not shorter than the long exposure %gs (the '
                       'ratio long / short must be > 1)' % (where, short_time, long_time))


def format_list_line(short_rel, long_rel, iso, fnumber):
    """One line in the official format: `./Sony/short/x.ARW ./Sony/long/y.ARW ISO200 F8`."""
    return '%s %s ISO%d F%s' % (short_rel, long_rel, iso, ('%g' % fnumber))


def write_list(lines, path):
    with safe_files.atomic_write(path) as f:
        f.write(''.join(line + '\n' for line in lines).encode('utf-8'))
