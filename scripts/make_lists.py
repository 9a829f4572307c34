"""Write Sony_{train,test,val}_list.txt from a dataset folder, in the official SID format.

Pairs every short exposure in <data_dir>/Sony/short with its scene's long exposure (burst index
00) in <data_dir>/Sony/long; the split comes from the scene id's first digit (0 train, 1 test,
2 val), ISO and F-number from the short file's EXIF. Useful after deleting or adding files, for
other cameras' raws, or to check that a download is complete: on the full Sony download it
writes the authors' lists (shipped in the project root) byte for byte. The lists go into the
dataset folder by default and never over the official ones in the project root.

    python3 scripts/make_lists.py --data_dir=dataset       # -> dataset/Sony_*_list.txt
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli
import raw_io
import sid_lists
from make_dataset import list_paths  # noqa: E402

SPLIT_OF_DIGIT = {digit: split for split, digit in sid_lists.SPLITS.items()}


def _raw_files(folder):
    if not os.path.isdir(folder):
        raise cli.SidError('%s: folder not found (expected the SID layout <data_dir>/Sony/'
                           '{short,long})' % folder)
    return sorted(f for f in os.listdir(folder) if not f.startswith('.'))


def build_lists(data_dir):
    """{split: [lines]} for every short exposure that has a long exposure of its scene."""
    short_dir, long_dir = (os.path.join(data_dir, 'Sony', k) for k in ('short', 'long'))
    longs = {}
    for name in _raw_files(long_dir):
        scene, burst, _ = sid_lists.parse_name(os.path.join(long_dir, name))
        if burst == 0:
            if scene in longs:
                raise cli.SidError('%s: scene %05d has two long exposures (%s and %s)'
                                   % (long_dir, scene, longs[scene], name))
            longs[scene] = name
    lines = {split: [] for split in sid_lists.SPLITS}
    for name in _raw_files(short_dir):
        short_path = os.path.join(short_dir, name)
        scene = sid_lists.parse_name(short_path)[0]
        split = SPLIT_OF_DIGIT.get(scene // 10000)
        if split is None or scene not in longs:
            continue  # no ground truth (or not a SID split): not a training or test pair
        iso, fnumber, _ = raw_io.read_exif(short_path)
        lines[split].append(sid_lists.format_list_line(
            './Sony/short/' + name, './Sony/long/' + longs[scene], iso, fnumber))
    return lines


def define_flags():
    from absl import flags
    flags.DEFINE_string('data_dir', 'dataset', 'dataset root holding Sony/short and Sony/long')
    flags.DEFINE_string('list_dir', '', 'where Sony_{train,test,val}_list.txt are written '
                        '(default: the data_dir; never the project root, where the official '
                        'lists are)')


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    paths = list_paths(f.list_dir or f.data_dir)
    lines = build_lists(f.data_dir)
    for split, split_lines in lines.items():
        path = paths[split]
        sid_lists.write_list(split_lines, path)
        print('%s: %d pairs' % (path, len(split_lines)))


if __name__ == '__main__':
    cli.run(main, define_flags)
