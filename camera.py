"""Cameras as data: what the SID pipeline needs to know about a sensor, one profile per camera.

The paper trains one model per camera (Sony A7S II Bayer, Fuji X-T2 X-Trans). A profile says how
that camera's raw becomes the network's input: which colour filter it has, how its counts are
normalised, how a repeat of its filter is packed into channels and how many output pixels one
packed pixel becomes (depth_to_space), and where its data set, lists and model live by default.
Code takes a profile; it never tests for a camera by name.

    SONY   the paper's constants (black 512, white 16383): exactly raw_io.pack_raw, as test_Sony.py
    FUJI   the paper's X-T2 (black 1024, white 16383): 6x6 X-Trans packed into 9 channels, block 3
    BAYER  any Bayer camera: levels from the file, any 2x2 phase (scripts/enhance.py; fine-tuning
           with train_Sony.py --camera=bayer, which cuts each mosaic to start on its red pixel)
"""
from collections import namedtuple

import numpy as np

import cli
import raw_io
import xtrans

FROM_FILE = 'file'  # black / white: read the file's own levels (raw_io.read_mosaic)

Profile = namedtuple('Profile', [
    'name',        # shown to users, the --camera value, and the data set's folder (<data_dir>/Sony)
    'cfa',         # 'bayer' or 'xtrans': the colour filter the packing expects
    'black',       # black level in raw counts, or FROM_FILE
    'white',       # white (saturation) level in raw counts, or FROM_FILE
    'packing',     # key of PACKINGS: mosaic [H, W] -> packed [H/block, W/block, channels]
    'block',       # depth_to_space factor of the network's output (output pixels per packed one)
    'channels',    # packed input channels
    'extension',   # raw file extension of the camera's data set, None for any
    'lists',       # (train, test, val) list file names of its data set, () for none
    'misaligned',  # test scene ids the authors ask to leave out of scores (eval.py --exclude)
])

SONY = Profile(name='Sony', cfa='bayer', black=raw_io.BLACK_LEVEL, white=raw_io.WHITE_LEVEL,
               packing='bayer', block=2, channels=4, extension='.ARW',
               lists=('Sony_train_list.txt', 'Sony_test_list.txt', 'Sony_val_list.txt'),
               misaligned=('10034', '10045', '10172'))
FUJI = Profile(name='Fuji', cfa='xtrans', black=xtrans.FUJI_BLACK_LEVEL,
               white=xtrans.FUJI_WHITE_LEVEL, packing='xtrans', block=xtrans.XTRANS_BLOCK,
               channels=9, extension='.RAF',
               lists=('Fuji_train_list.txt', 'Fuji_test_list.txt', 'Fuji_val_list.txt'),
               misaligned=())
BAYER = SONY._replace(name='bayer', black=FROM_FILE, white=FROM_FILE, packing='bayer_any',
                      extension=None, lists=(), misaligned=())
PROFILES = dict((p.name, p) for p in (SONY, FUJI, BAYER))
DATASETS = tuple(p.name for p in (SONY, FUJI))  # profiles with the authors' data set and lists
# --camera values of train_Sony.py, test_Sony.py, eval.py and scripts/build_cache.py: the data
# sets, and your own pairs of any Bayer camera (no default lists: the list flags must be given)
CAMERAS = DATASETS + (BAYER.name,)

# Packing name -> raw_io.Packing: how a raw of that colour filter is read, checked, aligned and
# packed, the multiple its sides are cropped to, the channels, the cache kinds.
PACKINGS = raw_io.PACKINGS

# Flags whose defaults are a camera's: a script's flag that has one of these defaults follows
# --camera (train_Sony.py --camera=Fuji reads ./Fuji_train_list.txt unless told otherwise).
# A camera without lists (BAYER) makes the list flags empty: required_list then asks for them.
FLAG_DEFAULTS = {
    'camera': lambda p: p.name,
    'train_list': lambda p: './%s' % p.lists[0] if p.lists else '',
    'test_list': lambda p: './%s' % p.lists[1] if p.lists else '',
    'val_list': lambda p: './%s' % p.lists[2] if p.lists else '',  # empty: no validation
    'checkpoint_dir': lambda p: './checkpoint/%s/' % p.name,
    'result_dir': lambda p: './result_%s/' % p.name,
    'exclude_scenes': lambda p: list(p.misaligned),
    'lists': lambda p: ['./%s' % p.lists[0]] if p.lists else [],  # scripts/build_cache.py
}


def define_flag(default=SONY.name, names=CAMERAS, sets='the packing, levels and network block, '
                'and the defaults of the list, checkpoint and result flags', flag_values=None):
    """--camera over the profiles `names`, case-insensitive (--camera=fuji)."""
    from absl import flags
    flags.DEFINE_enum('camera', default, list(names), 'camera profile (camera.py, any case); it '
                      'sets ' + sets, case_sensitive=False,
                      flag_values=flags.FLAGS if flag_values is None else flag_values)


def use_defaults(flag_values, profile):
    """Make `profile` the default camera of a script's flags: each flag of FLAG_DEFAULTS (--camera
    too) whose default is some camera's becomes this camera's (an empty value is nobody's). After
    parsing, flags given on the command line keep their values (absl's set_default)."""
    for name, value in FLAG_DEFAULTS.items():
        if name in flag_values:
            camera_defaults = [value(PROFILES[n]) for n in CAMERAS if value(PROFILES[n])]
            if flag_values[name].default in camera_defaults:
                flag_values.set_default(name, value(profile))


def flags_of(script, profile):
    """define_flags for `script` (train_Sony, test_Sony: a module with define_flags) run with
    `profile`'s defaults: train_Fuji.py and test_Fuji.py are the Sony scripts through this."""
    def define_flags():
        from absl import flags
        script.define_flags()
        flags.adopt_module_key_flags(script)  # --help lists the script's flags, with these defaults
        use_defaults(flags.FLAGS, profile)
    return define_flags


def from_flags():
    """The profile --camera names, with the camera's defaults for the flags not given."""
    from absl import flags
    profile = PROFILES[flags.FLAGS.camera]
    use_defaults(flags.FLAGS, profile)
    return profile


def required_list(flag_values, name, profile):
    """The value of the list flag `name`; empty (a camera without lists: BAYER) is a one-line
    error, not a read of ''."""
    value = flag_values[name].value
    if not value:
        raise cli.SidError('--%s is empty%s: name your list file ("short long ISO F" per line)'
                           % (name, '' if profile.lists else ' (--camera=%s has no default '
                              'lists)' % profile.name))
    return value


def levels(profile, mosaic=None):
    """(black, white) per packed channel: the profile's constants, or the file's own levels
    (`mosaic`: a raw_io.Mosaic, or the raw_cache.Levels of a levels cache entry)."""
    black = mosaic.black if profile.black == FROM_FILE else np.float32(profile.black)
    white = mosaic.white if profile.white == FROM_FILE else np.float32(profile.white)
    return black, white


def cache_jobs(pairs, profile):
    """The (raw, cache kind) entries training reads for `pairs` with `profile`: the packed input of
    each short exposure (and its levels, where the packing keeps the file's), the developed long
    exposure."""
    packing = PACKINGS[profile.packing]
    input_kind, gt_kind = packing.cache_kinds
    input_kinds = (input_kind, packing.levels_kind) if packing.levels_kind else (input_kind,)
    return ([(p.short, kind) for p in pairs for kind in input_kinds] +
            [(p.long, gt_kind) for p in pairs])  # novm


def packed_raw(path, profile):
    """A data set raw -> the network's normalised, not yet amplified input, as training reads it
    (SONY: exactly raw_io.pack_raw; FUJI: cropped to multiples of 6, 9 channels; BAYER: cut to
    start on its red pixel with even sides, the file's levels)."""
    spec = PACKINGS[profile.packing]
    if not spec.levels_kind:
        return raw_io.normalize(raw_io.read_packed(path, profile.packing), *levels(profile))
    mosaic = raw_io.read_bayer_cells(path)
    return raw_io.normalize(spec.pack(mosaic.counts), *levels(profile, mosaic))


def packed_input(mosaic, profile):
    """A camera's mosaic (raw_io.read_mosaic) -> the network's normalised, not yet amplified input.

    The mosaic is first brought to whole repeats of its filter (PACKINGS' align): a Bayer mosaic
    is mirrored out by one pixel where its red pixel is not at (0, 0) or a side is odd, an X-Trans
    one extended to multiples of 6. So the output is [block * h, block * w] with the picture at
    [dy:dy + H, dx:dx + W], (dy, dx) = mosaic.phase. For an RGGB mosaic of even size nothing moves
    and SONY gives exactly raw_io.pack_raw.
    """
    if mosaic.cfa != profile.cfa:
        raise ValueError('packed_input: a %s mosaic for the %s profile (%s)'
                         % (mosaic.cfa, profile.name, profile.cfa))
    black, white = levels(profile, mosaic)
    packing = PACKINGS[profile.packing]
    return raw_io.normalize(packing.pack(packing.align(mosaic.counts, mosaic.phase)), black, white)


def for_channels(channels):
    """'Sony/bayer' or 'Fuji': the profiles whose network takes `channels` packed channels."""
    return '/'.join(p.name for p in (SONY, BAYER, FUJI) if p.channels == channels) or 'no camera'


def model_hint(name, have, want):
    """For a checkpoint refused on shapes: '' or which camera its model is for, when the first
    conv's packed channels ([3, 3, channels, 32]) tell that the model is another camera's."""
    import network
    if name != network.INPUT_WEIGHTS or have[:2] + have[3:] != want[:2] + want[3:]:
        return ''
    return ': a model for %s raws (%d packed channels), not for %s (%d)' % (
        for_channels(have[2]), have[2], for_channels(want[2]), want[2])
