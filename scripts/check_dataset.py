"""Check that every raw named in SID list files exists and decodes, before hours of training.

A 25 GB download can be incomplete or corrupt; this reads each file's Bayer mosaic through rawpy
(the same path as training and testing) and prints one line per bad file.

    python3 scripts/check_dataset.py --data_dir=dataset Sony_train_list.txt Sony_test_list.txt
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sid_io  # noqa: E402


def check(list_paths, data_dir, progress=True):
    """Error lines (empty if all is well) and the number of distinct raw files checked."""
    from tqdm import tqdm
    errors, files = [], []
    for list_path in list_paths:
        try:
            pairs = sid_io.read_list(list_path, data_dir)
        except sid_io.SidError as e:
            errors.append(str(e))
            continue
        if not pairs:
            errors.append('%s: list has no pairs' % list_path)
        for pair in pairs:
            files += [pair.short, pair.long]
    files = sorted(set(files))
    for path in tqdm(files, desc='decoding', unit='file', disable=not progress):
        try:
            sid_io.read_bayer(path)
        except sid_io.SidError as e:
            errors.append(str(e))
    return errors, len(files)


def define_flags():
    from absl import flags
    flags.DEFINE_string('data_dir', 'dataset', 'dataset root the list paths are relative to')


def main(argv):
    from absl import flags
    list_paths = argv[1:] or ['Sony_train_list.txt', 'Sony_test_list.txt']
    errors, count = check(list_paths, flags.FLAGS.data_dir)
    for line in errors:
        sys.stderr.write('error: %s\n' % line)
    if errors:
        sys.exit(1)
    print('%d raw files in %s decode cleanly' % (count, ', '.join(list_paths)))


if __name__ == '__main__':
    from absl import app
    define_flags()
    app.run(main)
