"""Cameras as data: what the SID pipeline needs to know about a sensor, one profile per camera.

The paper trains one model per camera (Sony A7S II Bayer, Fuji X-T2 X-Trans). A profile says how
that camera's raw becomes the network's input: which colour filter it has, how its counts are
normalised, how a repeat of its filter is packed into channels and how many output pixels one
packed pixel becomes (depth_to_space). Code takes a profile; it never tests for a camera by name.

    SONY   the paper's constants (black 512, white 16383): exactly sid_io.pack_raw, as test_Sony.py
    BAYER  any Bayer camera: levels from the file, any 2x2 phase (scripts/enhance.py)

The Fuji X-Trans profile (cfa 'xtrans', 6x6 packing into 9 channels, block 3) comes with its
packing function; PACKINGS is where it plugs in.
"""
from collections import namedtuple

import numpy as np

import sid_io

FROM_FILE = 'file'  # black / white: read the file's own levels (sid_io.read_mosaic)

Profile = namedtuple('Profile', [
    'name',        # shown to users, and the --camera value where a script offers one
    'cfa',         # 'bayer' or 'xtrans': the colour filter the packing expects
    'black',       # black level in raw counts, or FROM_FILE
    'white',       # white (saturation) level in raw counts, or FROM_FILE
    'packing',     # key of PACKINGS: mosaic [H, W] -> packed [H/block, W/block, channels]
    'block',       # depth_to_space factor of the network's output (output pixels per packed one)
    'channels',    # packed input channels
    'extension',   # raw file extension of the camera's data set, None for any
    'lists',       # (train, test, val) list file names of its data set, () for none
])

SONY = Profile(name='Sony', cfa='bayer', black=sid_io.BLACK_LEVEL, white=sid_io.WHITE_LEVEL,
               packing='bayer', block=2, channels=4, extension='.ARW',
               lists=('Sony_train_list.txt', 'Sony_test_list.txt', 'Sony_val_list.txt'))
BAYER = SONY._replace(name='bayer', black=FROM_FILE, white=FROM_FILE, extension=None, lists=())
PROFILES = dict((p.name, p) for p in (SONY, BAYER))

PACKINGS = {'bayer': sid_io.pack_bayer}


def levels(profile, mosaic):
    """(black, white) per packed channel: the profile's constants, or the file's own levels."""
    black = mosaic.black if profile.black == FROM_FILE else np.float32(profile.black)
    white = mosaic.white if profile.white == FROM_FILE else np.float32(profile.white)
    return black, white


def packed_input(mosaic, profile):
    """A camera's mosaic (sid_io.read_mosaic) -> the network's normalised, not yet amplified input.

    The mosaic is first brought to the network's phase (sid_io.align_bayer: mirrored out by one
    pixel where its red pixel is not at (0, 0) or a side is odd), so the output is
    [block * h, block * w] with the picture at [dy:dy + H, dx:dx + W], (dy, dx) = mosaic.phase.
    For an RGGB mosaic of even size nothing moves and SONY gives exactly sid_io.pack_raw.
    """
    if profile.cfa != 'bayer':
        raise ValueError('packed_input handles Bayer profiles, not %s' % profile.cfa)
    black, white = levels(profile, mosaic)
    aligned = sid_io.align_bayer(mosaic.bayer, mosaic.phase)
    return sid_io.normalize(PACKINGS[profile.packing](aligned), black, white)
