"""Enhance your own dark raw photos with a trained SID model: any Bayer camera LibRaw reads, and
X-Trans raws in the X-T2's CFA phase with a Fuji model.

    python3 scripts/enhance.py --checkpoint_dir=checkpoint/Sony/ --auto_ratio IMG_0001.CR2
    python3 scripts/enhance.py --model=sid.pb --ratio=100 --out_dir=out --tiff *.NEF
    python3 scripts/enhance.py --auto_ratio DSCF0001.RAF      # X-Trans: ./checkpoint/Fuji/

Each raw is packed as the paper packs the Sony raws, with the file's own levels: black per colour
channel and white level from LibRaw, so a 12-, 14- or 16-bit camera lands in the same [0, 1]. A
mosaic that does not start with a red pixel (BGGR, GRBG, GBRG) or has an odd side is mirrored out
by one pixel first (the added row or column repeats the same-colour row or column two pixels in),
so the network sees whole 2x2 cells and the output covers exactly the raw's pixels; the file's
orientation is applied to the output. The packed raw is multiplied by the ratio (--ratio, or
--auto_ratio's brightness rule), clipped at 1, run through the U-Net in tiles (memory bounded by
--tile, result equal to untiled) and written as <name>_sid.png (8-bit sRGB, and with --tiff a
16-bit <name>_sid.tif) into --out_dir (default: next to each raw).

An X-Trans raw (rawpy's 6x6 raw_pattern) takes the Fuji profile: the X-T2's levels 1024/16383 and
the authors' 9-channel packing, after extending the mosaic at the bottom and right to whole 6x6
repeats (each added row or column repeats the one 6 before it, same colours), so the output again
covers exactly the raw's pixels. The model must be one for that camera's packing (a Fuji model
has 9 input channels, a Sony one 4): another is refused in one line.

Every input is checked before TensorFlow loads: X-Trans in another phase, X-Trans and Bayer raws
in one run, Foveon, monochrome, linear DNG, non-raw or truncated files end the run at once with
one line naming the file and the reason.

An output never replaces an input or another raw's output. Before the model loads, every output
path is compared with every input (real path and inode); each output records the raw it was made
from, the model and the settings (PNG text chunks, the TIFF's description); an existing output of
another raw, or a file this command did not write, is refused unless --overwrite. One of the same
raw, model and settings is skipped, so a rerun after a kill finishes only the missing files. Each
output folder is locked for the run and cleaned of a killed run's temporaries first.
"""
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import camera  # noqa: E402
import cli
import inference  # noqa: E402  (TensorFlow is imported later, by its functions)
import raw_io
import safe_files
import sid_lists

# --auto_ratio: choose the ratio that brings the mean of the amplified, clipped input to the
# brightness of a normally exposed frame. A camera's meter puts middle grey about 3 stops below
# clipping, so an average scene's raw mean is near 1/8 of the range between black and white.
AUTO_RATIO_TARGET = 0.125
AUTO_RATIO_MIN = 1.0  # never darken
AUTO_RATIO_STRIDE = 4  # the mean is taken on every 4th packed pixel in each direction
AUTO_RATIO_STEPS = 40  # bisection steps on log(ratio): far below 0.1% of the ratio
DEFAULT_TILE = 1072  # packed pixels: 2 x 2 tiles on a Sony frame, 1.1 GB (README, test_Sony.py)
# --ratio above the paper's largest (sid_lists.MAX_RATIO) is a warning; above RATIO_LIMIT an error:
# past a 16-bit raw's whole range, one count above black is already white.
RATIO_LIMIT = 65536
OUTPUT_SUFFIX = '_sid'
OUTPUT_EXTENSIONS = ('.png', '.tif')
# What each output records besides test_Sony.STAMP_KEY (the model): the raw it was made from
# (real path), and the settings and raw file state that decide its pixels.
SOURCE_KEY = 'sid_source'
SETTINGS_KEY = 'sid_enhance'
AUTO = 'auto'  # --camera: the profile follows each raw's colour filter (AUTO_PROFILES)
AUTO_PROFILES = {'bayer': camera.BAYER, 'xtrans': camera.FUJI}  # Mosaic.cfa -> profile
CFA_NAMES = {'bayer': 'Bayer', 'xtrans': 'X-Trans'}


def define_flags():
    from absl import flags
    flags.DEFINE_string('checkpoint_dir', './checkpoint/Sony/',
                        'trained model: folder with model.ckpt* (latest is used) or a prefix')
    flags.DEFINE_string('model', '', 'a frozen graph from scripts/export_model.py, instead of '
                        '--checkpoint_dir')
    flags.DEFINE_float('ratio', None, 'amplification: the exposure you want as a multiple of the '
                       'one you shot (the paper uses 100, 250 and 300)')
    flags.register_validator('ratio',
                             lambda v: v is None or (math.isfinite(v) and 0 < v <= RATIO_LIMIT),
                             message='--ratio must be a number > 0 and at most %d (beyond, one '
                             'count above black is white)' % RATIO_LIMIT)
    flags.DEFINE_bool('auto_ratio', False, 'choose the ratio per file: the one that brings the '
                      'mean of the amplified, clipped packed raw (black 0, white 1) to %g (a '
                      'normally exposed frame: middle grey 3 stops below clipping), within '
                      '[%g, %d]' % (AUTO_RATIO_TARGET, AUTO_RATIO_MIN, sid_lists.MAX_RATIO))
    flags.DEFINE_string('out_dir', '', 'where <name>_sid.png goes (default: next to each raw)')
    flags.DEFINE_bool('tiff', False, 'also write <name>_sid.tif, 16-bit sRGB')
    flags.DEFINE_bool('overwrite', False, 'replace existing outputs whoever made them (default: '
                      'outputs of other raws and files this command did not write are refused, '
                      'those of the same raw, model and settings skipped)')
    flags.DEFINE_enum('camera', AUTO, [AUTO] + sorted(camera.PROFILES),
                      '%s: X-Trans raws take %s, Bayer raws %s; %s reads black/white from each '
                      'file, %s uses the paper\'s Sony constants 512/16383, %s the X-T2\'s '
                      '1024/16383 and 9-channel packing (any case)'
                      % (AUTO, camera.FUJI.name, camera.BAYER.name, camera.BAYER.name,
                         camera.SONY.name, camera.FUJI.name), case_sensitive=False)
    inference.define_tile_flags(DEFAULT_TILE)


def auto_ratio(packed):
    """The ratio r in [1, 300] with mean(min(r * x, 1)) = AUTO_RATIO_TARGET over the packed raw x.

    The clipped mean is what the network sees: a street lamp that saturates counts as 1, not as
    the thousands its raw value times the ratio would be, so it does not darken the rest.
    """
    sample = np.asarray(packed[::AUTO_RATIO_STRIDE, ::AUTO_RATIO_STRIDE], np.float64)

    def brightness(ratio):
        return np.minimum(sample * ratio, 1.0).mean()

    low, high = np.log(AUTO_RATIO_MIN), np.log(sid_lists.MAX_RATIO)
    if brightness(np.exp(low)) >= AUTO_RATIO_TARGET:
        return AUTO_RATIO_MIN
    if brightness(np.exp(high)) <= AUTO_RATIO_TARGET:
        return float(sid_lists.MAX_RATIO)
    for _ in range(AUTO_RATIO_STEPS):
        mid = 0.5 * (low + high)
        if brightness(np.exp(mid)) < AUTO_RATIO_TARGET:
            low = mid
        else:
            high = mid
    return float(np.exp(0.5 * (low + high)))


def output_paths(raws, out_dir, tiff):
    """{raw: [png(, tif)]}; two raws that would write the same file are refused up front."""
    plan, owner = {}, {}
    for raw in raws:
        stem = os.path.splitext(os.path.basename(raw))[0] + OUTPUT_SUFFIX
        folder = out_dir or os.path.dirname(os.path.abspath(raw))
        paths = [os.path.join(folder, stem + ext) for ext in OUTPUT_EXTENSIONS[:1 + bool(tiff)]]
        key = os.path.normcase(os.path.abspath(paths[0]))
        if key in owner and owner[key] != raw:
            raise cli.SidError('%s: writes %s like %s; use separate runs or --out_dir'
                               % (raw, paths[0], owner[key]))
        owner[key] = raw
        plan[raw] = paths
    return plan


def file_id(path):
    """(device, inode) of an existing file, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_collisions(plan):
    """No output may be an input: compared by real path, and by inode for an existing output (a
    hard link, or another path to the same file)."""
    inputs = {}
    for raw in plan:
        inputs[os.path.normcase(os.path.realpath(raw))] = raw
        if file_id(raw) is not None:
            inputs[file_id(raw)] = raw
    for raw, paths in plan.items():
        for path in paths:
            victim = inputs.get(os.path.normcase(os.path.realpath(path))) or inputs.get(
                file_id(path) or ())
            if victim is not None:
                raise cli.SidError('%s: is the input %s, and the output of %s would replace it; '
                                   'give --out_dir' % (path, victim, raw))


def read_stamps(path):
    """The text an output of this command records ({key: value}; {} for a file without it), or
    None for a missing, truncated or corrupt file."""
    if path.endswith('.png'):
        from test_Sony import finished_png
        finished = finished_png(path)
        return None if finished is None else dict(
            (k, v) for k, v in finished[0].items() if isinstance(v, str))
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            page.asarray()  # all of it is there
            text = page.description
    except Exception:  # tifffile raises many kinds on damaged files
        return None
    try:
        stamps = json.loads(text)
    except ValueError:
        return {}
    return stamps if isinstance(stamps, dict) else {}


def refuse_others_outputs(plan, overwrite):
    """Existing outputs of another raw, or files this command did not write, stop the run unless
    --overwrite: replacing them would lose someone's result."""
    if overwrite:
        return
    for raw, paths in plan.items():
        for path in paths:
            if not os.path.lexists(path):
                continue
            stamps = read_stamps(path)
            source = (stamps or {}).get(SOURCE_KEY)
            if source == os.path.realpath(raw):
                continue
            raise cli.SidError('%s: %s; give --overwrite to replace it, or another --out_dir' % (
                path, 'holds the output of %s, not of %s' % (source, raw) if source else
                'exists and is not an output of enhance.py'))


def prepare_folders(plan):
    """Each output folder: writable (checked before the model loads), locked for this run, and
    cleaned of the temporaries a killed run left (named)."""
    for folder in sorted(set(os.path.dirname(os.path.abspath(p)) for paths in plan.values()
                             for p in paths)):
        safe_files.require_writable_dir(folder, 'the enhanced images')
        safe_files.lock_folder(folder, '--out_dir')
        removed = safe_files.remove_temporaries(folder, lambda name: name.endswith(tuple(
            OUTPUT_SUFFIX + ext for ext in OUTPUT_EXTENSIONS)))
        if removed:
            print('removed %d temporary files of an interrupted run from %s (%s)'
                  % (len(removed), folder, ', '.join(removed)))


def output_stamps(raw, model_id, ratio, profile, tile, overlap, rt, window=None):
    """What an output of `raw` records: its source, model and settings - the device and precision
    (rounding), the tiling or the NPU's fixed window, and the raw's size and modification time (a
    changed file is enhanced again)."""
    st = os.stat(raw)
    tiling = ('exact' if not tile or overlap >= inference.DEFAULT_TILE_OVERLAP else
              'inexact tile=%d overlap=%d' % (tile, overlap))
    if window is not None:
        tiling += ' window=%dx%d' % window
    settings = 'ratio=%s camera=%s device=%s precision=%s tiling=%s raw=%d-%d' % (
        '%r' % ratio if ratio else 'auto', profile.name, rt.device, rt.precision, tiling,
        st.st_size, st.st_mtime_ns)
    from test_Sony import STAMP_KEY
    return {SOURCE_KEY: os.path.realpath(raw), STAMP_KEY: model_id, SETTINGS_KEY: settings}


def done(paths, stamps):
    """Whether every output exists whole with these stamps (the same model: its content id)."""
    from test_Sony import STAMP_KEY, same_checkpoint
    for path in paths:
        have = read_stamps(path)
        if not have or have.get(SOURCE_KEY) != stamps[SOURCE_KEY] or \
                have.get(SETTINGS_KEY) != stamps[SETTINGS_KEY] or \
                not same_checkpoint(have.get(STAMP_KEY), stamps[STAMP_KEY]):
            return False
    return True


def choose_profile(raws, name):
    """The run's camera profile: --camera's, or with auto the one each raw's CFA calls for. Every
    raw must have that profile's CFA, and one run takes one profile (one model, one packing)."""
    chosen = {}
    for raw in raws:
        cfa = raw_io.read_mosaic(raw).cfa  # decodes fully: truncated data is found here, not later
        profile = AUTO_PROFILES[cfa] if name == AUTO else camera.PROFILES[name]
        if profile.cfa != cfa:
            raise cli.SidError('%s: %s sensor: needs a %s model, not --camera=%s'
                               % (raw, CFA_NAMES[cfa], profiles_for(cfa), name))
        if chosen and profile not in chosen:
            other, first = next(iter(chosen.items()))
            raise cli.SidError('%s: %s sensor, %s is %s: one model takes one kind, enhance '
                               'them in separate runs' % (raw, CFA_NAMES[cfa], first,
                                                          CFA_NAMES[other.cfa]))
        chosen.setdefault(profile, raw)
    return next(iter(chosen))


def profiles_for(cfa):
    return '/'.join(sorted(p.name for p in camera.PROFILES.values() if p.cfa == cfa))


def check_inputs(raws, model_path, checkpoint_dir):
    """Everything that can be refused without TensorFlow: the model's path, and a frozen graph
    that its export manifest does not describe."""
    import export_model
    if model_path and not os.path.isfile(model_path):
        raise cli.SidError('%s: frozen graph not found' % model_path)
    if model_path and export_model.manifest_of(model_path) is None:
        print('warning: %s has no export manifest (%s) beside it: its origin is not checked'
              % (model_path, export_model.MANIFEST % os.path.splitext(
                  os.path.basename(model_path))[0]))
    if not model_path and not (os.path.isdir(checkpoint_dir) or
                               os.path.isfile(checkpoint_dir + '.index')):
        raise cli.SidError('%s: no checkpoint folder or prefix here; give --checkpoint_dir or '
                           '--model=graph.pb' % checkpoint_dir)


def open_model(model_path, checkpoint_dir, profile, rt):
    """The network for `profile` from a frozen graph or a checkpoint, on the device of `rt`. A
    model of another camera's packing is refused in one line."""
    import npu_config
    print(npu_config.describe(rt))
    config = npu_config.session_config(rt)
    if not model_path:
        return inference.session_from_checkpoint(checkpoint_dir, config, profile)
    model = inference.session_from_graph(model_path, config)
    channels = model.input.shape.as_list()[-1]
    if channels != profile.channels:
        raise cli.SidError('%s: a model for %s raws (%s packed channels), not for %s (%d)' % (
            model_path, camera.for_channels(channels), channels,
            camera.for_channels(profile.channels), profile.channels))
    return model


def model_window(model, rt, tile, overlap, first_raw, profile):
    """The one input shape to feed, or None where shapes may vary: a frozen graph's own fixed
    shape (an export for Ascend's ATC), or on the NPU, which compiles one shape per session, a
    tile with its context (untiled: the first raw's packed size)."""
    import npu_config
    fixed = model.input.shape.as_list()[1:3]
    if None not in fixed:
        return tuple(fixed)
    if not npu_config.uses_fixed_shapes(rt):
        return None
    shape = None if tile else camera.packed_input(raw_io.read_mosaic(first_raw), profile).shape
    return inference.fixed_window(tile, overlap, shape)


def enhance(model, raw, paths, profile, ratio, tile, overlap, stamps, window=None):
    """One raw -> its PNG (and TIFF), each recording `stamps`; returns the ratio used and the
    network's seconds. window: the one input shape to feed (model_window)."""
    from tqdm import tqdm
    from test_Sony import save_png
    mosaic = raw_io.read_mosaic(raw)
    packed = camera.packed_input(mosaic, profile)
    ratio = ratio or auto_ratio(packed)
    raw_io.amplify(packed, ratio, out=packed)
    fixed = model.input.shape.as_list()[1:3]
    if None not in fixed:  # an export for Ascend's ATC: one input shape, no tiles
        if list(packed.shape[:2]) != fixed:
            raise cli.SidError('%s: packs to %dx%d, the graph %s takes only %dx%d; export one '
                               'with any size for this camera' % (raw, packed.shape[0],
                                                                  packed.shape[1], model.source,
                                                                  fixed[0], fixed[1]))
        tile = 0
    dtypes = (np.uint8, np.uint16)[:len(paths)]
    bar = tqdm(total=inference.tile_count(packed.shape[0], packed.shape[1], tile, overlap,
                                          window),
               desc=os.path.basename(raw), unit='tile', leave=False)
    start = time.time()
    try:
        with bar:
            images = inference.run_network(model.session, model.input, model.output, packed,
                                           tile, overlap, dtypes, on_tile=bar.update,
                                           block=profile.block, window=window)
    except cli.SidError as e:
        raise cli.SidError('%s: %s' % (raw, e))
    seconds = time.time() - start
    del packed
    (dy, dx), (height, width) = mosaic.phase, mosaic.counts.shape
    for image, path in zip(images, paths):
        image = raw_io.orient(image[dy:dy + height, dx:dx + width], mosaic.flip)
        if image.dtype == np.uint8:
            save_png(np.ascontiguousarray(image), path, stamps)
        else:
            import tifffile
            with safe_files.atomic_path(path) as tmp:
                tifffile.imwrite(tmp, np.ascontiguousarray(image), photometric='rgb',
                                 description=json.dumps(stamps, sort_keys=True), metadata=None)
    return ratio, seconds


def main(argv):
    from absl import flags
    from test_Sony import checkpoint_stamp
    f = flags.FLAGS
    raws = argv[1:]
    if not raws:
        raise cli.SidError('no raw files given: python3 scripts/enhance.py --auto_ratio RAW ...')
    if (f.ratio is None) == (not f.auto_ratio):
        raise cli.SidError('give either --ratio=R or --auto_ratio (see --help)')
    if f.ratio is not None and f.ratio > sid_lists.MAX_RATIO:
        print('warning: --ratio=%g is above the paper\'s largest, %d: the model never saw such an '
              'amplification (expect noise and colour casts)' % (f.ratio, sid_lists.MAX_RATIO))
    plan = output_paths(raws, f.out_dir, f.tiff)
    check_collisions(plan)
    profile = choose_profile(raws, f.camera)
    # A data set camera's model lives in its folder (./checkpoint/Fuji/); other Bayer raws: Sony's.
    camera.use_defaults(f, profile if profile.lists else camera.SONY)
    check_inputs(raws, f.model, f.checkpoint_dir)
    prepare_folders(plan)
    refuse_others_outputs(plan, f.overwrite)

    inference.use_system_allocator()
    inference.return_freed_memory_to_os()
    cli.import_tensorflow()  # only now: bad inputs fail in well under 1 s
    import npu_config
    rt = npu_config.resolve()  # the device test_Sony.py's auto picks
    model = open_model(f.model, f.checkpoint_dir, profile, rt)
    model_id = checkpoint_stamp(model.source)
    window = model_window(model, rt, f.tile, f.tile_overlap, raws[0], profile)
    print('model %s (%s); %d raw files, %s' % (
        model.source, profile.name, len(raws),
        'every tile fed as %dx%d packed px' % window if window else
        'tiles of %d+%d packed px' % (f.tile, f.tile_overlap) if f.tile else 'untiled'))
    skipped = 0
    with model.session:
        for raw in raws:
            stamps = output_stamps(raw, model_id, f.ratio, profile, f.tile, f.tile_overlap, rt,
                                   window)
            if not f.overwrite and done(plan[raw], stamps):
                skipped += 1
                continue
            ratio, seconds = enhance(model, raw, plan[raw], profile, f.ratio, f.tile,
                                     f.tile_overlap, stamps, window)
            print('%s: ratio %.1f%s, network %.1f s -> %s' % (
                raw, ratio, ' (auto)' if f.auto_ratio else '', seconds, ', '.join(plan[raw])))
    rss = inference.peak_rss_mb()
    print('enhanced %d raw files, skipped %d already done; peak RSS %s' % (
        len(raws) - skipped, skipped, '%.0f MB' % rss if rss is not None else 'n/a'))


if __name__ == '__main__':
    cli.run(main, define_flags, positional=True)
