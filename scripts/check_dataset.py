"""Check that every raw named in SID list files exists and decodes, before hours of training.

A 25 GB download can be incomplete or corrupt. For each list this prints how many of its pairs
are present - a partial download is one summary line per list, not a first error - then reads
every listed file that exists through rawpy (the same path as training and testing) and prints
one line per file that does not decode or does not have the camera's colour filter. Without list
arguments it checks the authors' three lists of the camera (--camera, Sony by default) shipped in
the project root.

    python3 scripts/check_dataset.py --data_dir=dataset
    python3 scripts/check_dataset.py --data_dir=dataset --camera=Fuji
    python3 scripts/check_dataset.py --data_dir=mine --camera=bayer mine/Sony_train_list.txt
    python3 scripts/check_dataset.py --data_dir=/data/sid_small /data/sid_small/Sony_test_list.txt
"""
import os
import sys

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
import camera
import cli
import sid_lists


def presence(list_path, pairs):
    """(summary line, True if every listed file exists) for one list's pairs."""
    listed = sorted(set(path for pair in pairs for path in (pair.short, pair.long)))
    missing = set(path for path in listed if not os.path.isfile(path))
    complete = [p for p in pairs if p.short not in missing and p.long not in missing]
    summary = '%s: %d of %d pairs present' % (list_path, len(complete), len(pairs))
    if not missing:
        return summary, True
    first = next(p for p in pairs if p.short in missing or p.long in missing)
    return ('%s, %d of %d listed files missing; first missing: %s (line %d)' % (
        summary, len(missing), len(listed), first.short if first.short in missing else first.long,
        first.line), False)


def check(list_paths, data_dir, progress=True, profile=camera.SONY):
    """(error lines, summary lines of complete lists, number of raw files decoded); every raw is
    read as training reads it for `profile` (its CFA and phase checked)."""
    from tqdm import tqdm
    errors, summaries, files = [], [], set()
    for list_path in list_paths:
        try:
            pairs = sid_lists.read_list(list_path, data_dir, check_files=False)
        except cli.SidError as e:
            errors.append(str(e))
            continue
        if not pairs:
            errors.append('%s: list has no pairs' % list_path)
            continue
        summary, complete = presence(list_path, pairs)
        (summaries if complete else errors).append(summary)
        files.update(path for pair in pairs for path in (pair.short, pair.long)
                     if os.path.isfile(path))
    # No bar unless stderr is a terminal, so that logs keep one line per error.
    bar = dict(desc='decoding', unit='file', disable=None if progress else True)
    for path in tqdm(sorted(files), **bar):
        try:
            camera.PACKINGS[profile.packing].read(path)
        except cli.SidError as e:
            errors.append(str(e))
    return errors, summaries, len(files)


def define_flags():
    from absl import flags
    flags.DEFINE_string('data_dir', 'dataset', 'dataset root the list paths are relative to')
    camera.define_flag(sets='the colour filter every raw must have and the default lists '
                       '(bayer: any Bayer phase, no default lists)')


def main(argv):
    from absl import flags
    profile = camera.PROFILES[flags.FLAGS.camera]
    list_paths = argv[1:] or [os.path.join(PROJECT_ROOT, name) for name in profile.lists]
    if not list_paths:
        raise cli.SidError('--camera=%s has no default lists: name your list files after the '
                           'flags' % profile.name)
    errors, summaries, count = check(list_paths, flags.FLAGS.data_dir, profile=profile)
    for line in summaries:
        print(line)
    for line in errors:
        sys.stderr.write('error: %s\n' % line)
    if errors:
        sys.exit(1)
    print('%d raw files in %s decode cleanly' % (count, ', '.join(list_paths)))


if __name__ == '__main__':
    cli.run(main, define_flags, positional=True)
