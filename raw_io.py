"""Camera raws: decoding through rawpy/LibRaw with one-line errors, the paper's packing of a
Bayer mosaic into 4 channels (X-Trans: xtrans.py), developing the ground truth, EXIF.

Everything that touches a raw file goes through rawpy, so generated DNGs and real Sony ARWs take
the same path. A profile in camera.py names one of PACKINGS: how its raws are read, checked,
aligned, packed, developed and cached.
"""
import contextlib
import os
import sys
import tempfile
from collections import namedtuple

import numpy as np

import xtrans
from cli import SidError

BLACK_LEVEL = 512
WHITE_LEVEL = 16383
GT_SCALE = 65535.0  # rawpy postprocess with output_bps=16
# The paper's development of the long exposure into the ground truth, in the sensor's
# orientation (user_flip=0): LibRaw otherwise turns its output by the file's EXIF orientation
# (3: 180 degrees at the same size, silently) while the packed input is never turned. For the
# unrotated files of the SID set this is exactly the paper's postprocess call.
GT_POSTPROCESS = dict(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16,
                      user_flip=0)
# Positions of R, G, B, G in a 2x2 RGGB cell, in the paper's channel order.
BAYER_OFFSETS = ((0, 0), (0, 1), (1, 1), (1, 0))
FOVEON_MAGIC = b'FOVb'  # Sigma X3F files (LibRaw >= 0.20 no longer decodes them)
TIFF_MAGICS = (b'II*\x00', b'MM\x00*')
IMAGE_MAGICS = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG', 'PNG'))
DNG_VERSION_TAG = 50706
PHOTOMETRIC_MINISBLACK = 1  # a DNG main image without colour filter
PHOTOMETRIC_LINEAR_RAW = 34892  # a DNG main image already demosaiced
# A camera's raw as recorded (read_mosaic): uint16 mosaic, (row, col) of its first red pixel,
# float32 black and white level per packed channel (R, G, B, G; one level for X-Trans), LibRaw's
# orientation code, and the colour filter: 'bayer' or 'xtrans' (a key of PACKINGS).
Mosaic = namedtuple('Mosaic', 'counts phase black white flip cfa')


def _capture_fd2():
    """Start sending C-level stderr to a temporary file; returns a function that restores it and
    returns what was written there (None if stderr could not be redirected)."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to catch
        return lambda: None
    sink = tempfile.TemporaryFile()
    os.dup2(sink.fileno(), 2)

    def restore():
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        text = sink.read().decode('utf-8', 'replace')
        sink.close()
        return text
    return restore


def _unreadable_reason(path):
    """Why LibRaw refused a file, in plain words (it only says "unsupported format")."""
    with open(path, 'rb') as f:
        head = f.read(8)
    if head.startswith(FOVEON_MAGIC):
        return 'Foveon X3 sensor (three stacked colour layers, no Bayer mosaic): not supported'
    for magic, kind in IMAGE_MAGICS:
        if head.startswith(magic):
            return 'not a readable raw file: a %s image, not camera raw data' % kind
    if head[:4] in TIFF_MAGICS:
        import tifffile
        try:
            with tifffile.TiffFile(path) as tif:
                first = tif.pages[0]
                is_dng = DNG_VERSION_TAG in first.tags
                pages = [first] + list(getattr(first, 'pages', None) or [])
                photometric = [int(p.photometric) for p in pages
                               if not getattr(p.tags.get(254), 'value', 0)]  # main images only
        except Exception:  # tifffile raises many kinds on damaged files; the reason stays generic
            return 'not a readable raw file (LibRawFileUnsupportedError)'
        if not is_dng:
            return ('not a readable raw file: a TIFF image without camera raw data (from a '
                    'scanner or an image editor?)')
        if PHOTOMETRIC_MINISBLACK in photometric:
            return 'monochrome DNG: no colour filter array, not supported'
        if PHOTOMETRIC_LINEAR_RAW in photometric:
            return 'linear DNG: already demosaiced, no CFA'
        return 'a DNG that LibRaw cannot decode (photometric %s)' % photometric
    return 'not a readable raw file (LibRawFileUnsupportedError)'


@contextlib.contextmanager
def open_raw(path):
    """rawpy.imread + unpack with LibRaw's errors turned into one-line SidErrors naming the file.

    LibRaw also prints data errors ("<file>: Unexpected end of file") to C stderr, and for some
    formats carries on with garbage: those lines are caught, become the error, and are not
    printed a second time.
    """
    import rawpy  # deferred: only the scripts that decode need LibRaw loaded
    if os.path.isdir(path):
        raise SidError('%s: is a folder, not a raw file' % path)
    if not os.path.isfile(path):
        raise SidError('%s: raw file not found' % path)
    restore = _capture_fd2()
    raw, error = None, None
    try:
        raw = rawpy.imread(path)
        raw.unpack()
    except rawpy.LibRawFileUnsupportedError:
        error = _unreadable_reason(path)
    except rawpy.LibRawError as e:
        # Opening read the header; what fails after that is the image data.
        error = ('raw data is corrupt or truncated (%s)' if raw is not None else
                 'not a readable raw file (%s)') % type(e).__name__
    except (OSError, ValueError) as e:
        error = 'not a readable raw file (%s)' % type(e).__name__
    finally:
        printed = restore()
    data_errors = [line for line in (printed or '').splitlines() if line.startswith(path + ':')]
    others = [line for line in (printed or '').splitlines() if line not in data_errors]
    if others:  # not LibRaw's data errors: pass them on
        sys.stderr.write('\n'.join(others) + '\n')
    if error is None and data_errors:
        error = 'raw data is corrupt or truncated (LibRaw: %s)' % data_errors[0][len(path) + 1:]
    if error is not None:
        if raw is not None:
            raw.close()
        raise SidError('%s: %s' % (path, error))
    try:
        yield raw
    except rawpy.LibRawError as e:
        raise SidError('%s: raw data is corrupt or truncated (%s)' % (path, type(e).__name__))
    finally:
        raw.close()


def is_xtrans(raw):
    """rawpy reports an X-Trans raw with a 6x6 raw_pattern (Bayer: 2x2); its raw_type, num_colors
    and color_desc are those of a Bayer raw."""
    return raw.raw_pattern is not None and raw.raw_pattern.shape == (xtrans.XTRANS_PERIOD,) * 2


def cfa_phase(path, raw):
    """(row, column) of the red pixel in the visible mosaic's first 2x2 cell.

    Anything that is not an RGB Bayer mosaic is refused in plain words: the U-Net sees 2x2 cells.
    """
    import rawpy
    if raw.raw_type != rawpy.RawType.Flat:
        if path.lower().endswith('.dng'):
            raise SidError('%s: linear DNG: already demosaiced, no CFA' % path)
        raise SidError('%s: already demosaiced raw (e.g. sRAW/mRAW): no CFA' % path)
    if raw.num_colors == 1:
        raise SidError('%s: monochrome sensor: no colour filter array' % path)
    if is_xtrans(raw):
        raise SidError('%s: X-Trans sensor: needs a Fuji model' % path)
    pattern = raw.raw_pattern
    colors = raw.color_desc.decode('ascii', 'replace')
    cell = ''
    if pattern is not None and pattern.shape == (2, 2):
        cell = ''.join(colors[i] if i < len(colors) else '?' for i in pattern.flat)
    if sorted(cell) != sorted('RGGB'):
        raise SidError('%s: not an RGB Bayer sensor (CFA pattern %s, colours %s)'
                       % (path, 'x'.join(map(str, pattern.shape)) if pattern is not None
                          else 'none', colors))
    return divmod(cell.index('R'), 2)


def _check_bayer(path, raw):
    """The paper's path takes RGGB as it is: training pairs mosaics with full-size targets."""
    if cfa_phase(path, raw) != (0, 0):
        colors = raw.color_desc.decode('ascii', 'replace')
        order = ''.join(colors[i] for i in raw.raw_pattern.flat)
        raise SidError('%s: CFA order %s, expected RGGB (scripts/enhance.py reads any Bayer order)'
                       % (path, order))


def read_bayer(path):
    """The visible RGGB mosaic as uint16, plus the paper's (black, white) levels."""
    with open_raw(path) as raw:
        _check_bayer(path, raw)
        # raw_image_visible is a view into LibRaw's buffer: copy it before the file closes.
        bayer = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
    if bayer.ndim != 2 or bayer.shape[0] % 2 or bayer.shape[1] % 2:
        raise SidError('%s: raw size %s is not even in height and width; SID packing needs '
                       '2x2 Bayer cells' % (path, 'x'.join(map(str, bayer.shape))))
    return bayer, (float(BLACK_LEVEL), float(WHITE_LEVEL))


def read_mosaic(path):
    """Any camera's raw, as recorded: the mosaic, its CFA phase, its levels, its orientation.

    Bayer levels are per packed channel (R, G, B, G after align_bayer), from the file: LibRaw
    reports black levels by colour index (R, G, B, G2), not by position, so each position looks its
    colour up. The white level is LibRaw's per-channel one where the file has it, else the global
    one. An X-Trans raw (a 6x6 raw_pattern) must be in the X-T2 phase the 9-channel packing
    assumes (xtrans.check_xtrans); its levels are the file's overall ones.
    """
    with open_raw(path) as raw:
        counts = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
        flip = raw.sizes.flip
        if is_xtrans(raw):
            xtrans.check_xtrans(path, raw)
            return Mosaic(counts, (0, 0), np.float32(np.mean(raw.black_level_per_channel)),
                          np.float32(raw.white_level), flip, 'xtrans')
        phase = cfa_phase(path, raw)
        pattern = raw.raw_pattern
        blacks = raw.black_level_per_channel
        whites = getattr(raw, 'camera_white_level_per_channel', None)
        if not whites or min(whites) <= max(blacks):
            whites = [raw.white_level] * len(blacks)
        colors = [pattern[(y + phase[0]) % 2, (x + phase[1]) % 2] for y, x in BAYER_OFFSETS]
    black = np.array([blacks[c] for c in colors], np.float32)
    white = np.array([whites[c] for c in colors], np.float32)
    if (white <= black).any():
        raise SidError('%s: white level %s is not above black level %s'
                       % (path, white.tolist(), black.tolist()))
    return Mosaic(counts, phase, black, white, flip, 'bayer')


def align_bayer(bayer, phase):
    """The mosaic mirrored out by one pixel where needed so it starts on a red pixel and has even
    height and width: [H + dy + (H + dy) % 2, W + dx + ...], original pixel (0, 0) at (dy, dx).

    Mirroring (not repeating) the edge keeps every pixel's colour: the row added above row 0 is
    row 1, the same colour as the missing row -1. The network then sees a full 2x2 cell at every
    edge, and its output covers the image; crop it with [dy:dy + H, dx:dx + W].
    """
    dy, dx = phase
    height, width = bayer.shape
    pad = ((dy, (height + dy) % 2), (dx, (width + dx) % 2))
    return np.pad(bayer, pad, mode='reflect') if any(sum(p) for p in pad) else bayer


def orient(image, flip):
    """An image turned as the file's orientation says (LibRaw's flip code, as rawpy's
    postprocess turns it): bit 2 transposes, bit 1 flips rows, bit 0 flips columns."""
    if flip & 2:
        image = image[::-1]
    if flip & 1:
        image = image[:, ::-1]
    if flip & 4:
        image = np.swapaxes(image, 0, 1)
    return image


def pack_bayer(bayer):
    """[H, W] RGGB mosaic -> [H/2, W/2, 4] in the paper's channel order R, G, B, G (same dtype)."""
    return np.stack([bayer[y::2, x::2] for y, x in BAYER_OFFSETS], axis=-1)


def read_xtrans(path):
    """The visible X-T2 mosaic as uint16 (CFA phase checked), at least one 6x6 repeat."""
    with open_raw(path) as raw:
        xtrans.check_xtrans(path, raw)
        mosaic = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
    if min(mosaic.shape) < xtrans.XTRANS_PERIOD:
        raise SidError('%s: raw size %s is smaller than one 6x6 X-Trans repeat'
                       % (path, 'x'.join(map(str, mosaic.shape))))
    return mosaic


# ---------------------------------------------------------------- the packings
# What camera.py's profiles name as their `packing`: how a raw of that colour filter is read for
# the train and test path (read: CFA and size checked, uint16), checked when developed (check),
# brought to whole repeats for the enhance command (align), packed (pack), the multiple its height
# and width are cropped down to by the packing, the packed channels, the decoded-raw cache's kinds
# for its packed input and its developed target, the kind of its per-channel levels (None: the
# profile's constants need none), and how the developed image (GT_POSTPROCESS) is cut like the
# packed mosaic (cut_developed(path, raw, rgb)), so that ground truth and input stay aligned pixel
# for pixel.
Packing = namedtuple('Packing', 'read check align pack multiple channels cache_kinds levels_kind '
                                'cut_developed')


def _read_rggb(path):
    return read_bayer(path)[0]


def _cut_to_multiple(multiple):
    """cut_developed of the paper's packings: bottom and right cropped to `multiple`, as their
    packing crops the mosaic (X-Trans to multiples of 6; even Bayer raws lose nothing)."""
    def cut(path, raw, rgb):
        height, width = (n // multiple * multiple for n in rgb.shape[:2])
        return rgb if (height, width) == rgb.shape[:2] else rgb[:height, :width]
    return cut


def cut_to_red(image, phase):
    """An image on the mosaic's grid cut to whole RGGB cells: from the red pixel at `phase` (row,
    column of the first 2x2 cell), even height and width. At most one row or column goes at each
    side, and a mosaic in any CFA phase becomes an RGGB one."""
    dy, dx = phase
    height, width = (image.shape[0] - dy) // 2 * 2, (image.shape[1] - dx) // 2 * 2
    return image[dy:dy + height, dx:dx + width]


def read_bayer_cells(path):
    """Any Bayer raw for training and testing with its own levels: read_mosaic's mosaic cut to
    whole RGGB cells (cut_to_red), so phase (0, 0); levels per packed channel, as read_mosaic
    gives them for the enhance command (the same R, G, B, G sites)."""
    mosaic = read_mosaic(path)
    if mosaic.cfa != 'bayer':
        raise SidError('%s: X-Trans sensor: train and test it with --camera=Fuji' % path)
    counts = np.ascontiguousarray(cut_to_red(mosaic.counts, mosaic.phase))
    return mosaic._replace(counts=counts, phase=(0, 0))


def _cut_developed_to_red(path, raw, rgb):
    """The developed image cut as read_bayer_cells cuts the mosaic; it must have the mosaic's
    size (LibRaw stretches raws with non-square pixels, which cannot pair pixel for pixel)."""
    visible = raw.raw_image_visible.shape
    if rgb.shape[:2] != visible:
        raise SidError('%s: developed size %dx%d differs from the raw mosaic\'s %dx%d (non-square '
                       'pixels?): ground truth and input cannot be aligned'
                       % (path, rgb.shape[1], rgb.shape[0], visible[1], visible[0]))
    return cut_to_red(rgb, cfa_phase(path, raw))


def _check_any_bayer(path, raw):
    cfa_phase(path, raw)


PACKINGS = {
    'bayer': Packing(_read_rggb, _check_bayer, align_bayer, pack_bayer, 2, len(BAYER_OFFSETS),
                     ('input', 'gt'), None, _cut_to_multiple(2)),
    # Any Bayer camera with the file's levels (camera.BAYER): the mosaic cut to start on its red
    # pixel with even sides, the ground truth cut identically in the sensor's orientation.
    'bayer_any': Packing(lambda path: read_bayer_cells(path).counts, _check_any_bayer,
                         align_bayer, pack_bayer, 2, len(BAYER_OFFSETS),
                         ('bayer_any_input', 'bayer_any_gt'), 'bayer_any_levels',
                         _cut_developed_to_red),
    'xtrans': Packing(read_xtrans, xtrans.check_xtrans, xtrans.align_xtrans, xtrans.pack_xtrans,
                      xtrans.XTRANS_PERIOD, xtrans.CHANNELS, ('xtrans_input', 'xtrans_gt'), None,
                      _cut_to_multiple(xtrans.XTRANS_PERIOD)),
}


def read_packed(path, packing='bayer'):
    """A raw's packed counts (uint16, not normalised): what the cache's input kinds hold."""
    spec = PACKINGS[packing]
    return spec.pack(spec.read(path))


def develop(path, packing='bayer'):
    """The paper's ground truth as uint16 RGB: postprocess, cut as the packing cuts the mosaic
    (cut_developed: to the packed size x block, as the authors' Fuji code crops its ground truth
    to the network's output; a no-op for even-sized RGGB raws)."""
    with open_raw(path) as raw:
        PACKINGS[packing].check(path, raw)
        return _developed(path, raw, packing)


def _developed(path, raw, packing):
    """An open raw postprocessed with the paper's flags, cut as the packing cuts its mosaic."""
    return PACKINGS[packing].cut_developed(path, raw, raw.postprocess(**GT_POSTPROCESS))


def normalize(packed, black=BLACK_LEVEL, white=WHITE_LEVEL):
    """Raw counts -> [0, 1] float32 after black subtraction (the paper's scaling).

    black and white are numbers, or per-channel arrays along the last axis (read_mosaic's).
    """
    x = packed.astype(np.float32)  # in place from here: no temporaries on training's hot path
    x -= np.float32(black)
    np.maximum(x, 0, out=x)
    x /= np.float32(white - black)
    return x


def amplify(x, ratio, out=None):
    """The paper's brightening of the short exposure: multiply by the ratio, clip at 1.

    out=x updates a float32 x in place (training's crops); by default x is left alone.
    """
    y = np.multiply(x, np.float32(ratio), out=out)
    return np.minimum(y, 1.0, out=y)


def pack_raw(path):
    """The paper's pack_raw: normalised [H/2, W/2, 4] float32 (not yet amplified)."""
    bayer, (black, white) = read_bayer(path)
    return normalize(pack_bayer(bayer), black, white)


def postprocess(path, packing='bayer', **overrides):
    """rawpy postprocess with the paper's ground-truth flags -> uint16 [H, W, 3], of a raw with
    the colour filter of `packing` (a PACKINGS key)."""
    args = dict(GT_POSTPROCESS, **overrides)
    with open_raw(path) as raw:
        PACKINGS[packing].check(path, raw)
        rgb = raw.postprocess(**args)
    return rgb


def read_ground_truth(path):
    """The long exposure as the paper's target: postprocessed sRGB in [0, 1] float32."""
    return postprocess(path).astype(np.float32) / np.float32(GT_SCALE)


def develop_amplified(path, ratio, packing='bayer'):
    """The network's input as a picture: raw counts above black times `ratio`, clipped at white
    (as pack_raw + amplify clip at 1), developed and cropped like the ground truth (develop) ->
    uint16 [H, W, 3].

    Uses the file's own levels and any CFA of `packing`'s kind, so it shows raws as they are:
    each site's own black (a camera whose blacks differ by a count or two per site would get a
    colour cast of ratio times that from one mean black).
    """
    with open_raw(path) as raw:
        counts = raw.raw_image_visible  # LibRaw's buffer: postprocess develops what is written here
        black = np.asarray(raw.black_level_per_channel, np.float32)[raw.raw_colors_visible]
        bright = (counts.astype(np.float32) - black) * np.float32(ratio) + black
        counts[:] = np.clip(bright, 0, raw.white_level)
        return _developed(path, raw, packing)


def read_exif(path):
    """(iso, fnumber, exposure_seconds) from the file's EXIF (IFD0 or the EXIF sub-IFD)."""
    import exifread
    try:
        with open(path, 'rb') as f:
            tags = exifread.process_file(f, details=False)
    except Exception as e:  # exifread raises a mix of its own and builtin errors
        raise SidError('%s: cannot read EXIF (%s)' % (path, type(e).__name__))

    def value(name):
        for prefix in ('EXIF ', 'Image '):
            tag = tags.get(prefix + name)
            if tag is not None:
                v = tag.values[0]
                return float(v.num) / v.den if hasattr(v, 'den') else float(v)
        raise SidError('%s: EXIF has no %s' % (path, name))

    return int(value('ISOSpeedRatings')), value('FNumber'), value('ExposureTime')


def gt_to_float(rgb):
    """uint16 postprocessed RGB (any crop of it) -> the paper's [0, 1] float32 target."""
    out = rgb.astype(np.float32)
    out /= np.float32(GT_SCALE)
    return out
