"""Pre-build the decoded-raw cache that train_Sony.py reads, using every core.

train_Sony.py builds missing entries itself before its first step; run this beforehand to decode
the 25 GB Sony set once (about 1865 short + 161 long raws) while the device does something else:

    python3 scripts/build_cache.py --data_dir=./dataset --lists=./Sony_train_list.txt
    python3 scripts/build_cache.py --camera=Fuji     # ./Fuji_train_list.txt, X-Trans entries
    python3 scripts/build_cache.py --camera=bayer --data_dir=mine --lists=mine/Sony_train_list.txt

Entries are written atomically, keyed by each raw's size, mtime, inode and ctime, and carry a
checksum, so re-running decodes only what is missing, changed or damaged (one line per damaged
entry). --noverify skips reading the data of existing entries (their header and size are still
checked); train_Sony.py always verifies.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import camera  # noqa: E402
import cli
import raw_cache
import safe_files
import sid_lists


def cache_jobs(lists, data_dir, profile=camera.SONY):
    """(raw, kind) for every pair of the list files, as train_Sony.py reads them for the camera
    `profile` (camera.cache_jobs: packed input per short, RGB per long, levels where needed)."""
    jobs = set()
    for list_path in lists:
        jobs.update(camera.cache_jobs(sid_lists.read_list(list_path, data_dir), profile))
    return sorted(jobs)


def define_flags():
    from absl import flags
    camera.define_flag(sets='the packing and the default of --lists')
    flags.adopt_module_key_flags(camera)
    flags.DEFINE_string('data_dir', './dataset', 'dataset root holding Sony/ (Fuji/)')
    flags.DEFINE_list('lists', ['./Sony_train_list.txt'], 'list files whose raws to decode '
                      '(default: the camera\'s training list)')
    flags.DEFINE_string('cache_dir', '', 'decoded-raw cache; default <data_dir>/cache')
    flags.DEFINE_integer('workers', 0, 'decoding processes; 0: all cores', lower_bound=0)
    flags.DEFINE_bool('verify', True, 'checksum the data of existing entries (--noverify: '
                      'header and size only)')


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    profile = camera.from_flags()
    cache_dir = f.cache_dir or os.path.join(f.data_dir, 'cache')
    jobs = cache_jobs(camera.required_list(f, 'lists', profile), f.data_dir, profile)
    safe_files.require_writable_dir(cache_dir, 'the decoded-raw cache')
    start = time.time()
    entries = raw_cache.build_cache(jobs, cache_dir, f.data_dir, f.workers, verify=f.verify)
    size = sum(os.path.getsize(p) for p in entries.values())
    print('cache %s: %d entries, %.2f GB, %s in %.1f s'
          % (cache_dir, len(entries), size / 1e9, 'verified' if f.verify else 'ready',
             time.time() - start))


if __name__ == '__main__':
    cli.run(main, define_flags)
