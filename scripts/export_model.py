"""Export a trained SID checkpoint for deployment: frozen graph (.pb), SavedModel, ONNX.

    python3 scripts/export_model.py --checkpoint_dir=checkpoint/Sony/ --out_dir=export
    python3 scripts/export_model.py --height=1424 --width=2128 --out_dir=export_atc  # fixed shape
    python3 scripts/export_model.py --camera=Fuji --out_dir=export_fuji  # [1,H,W,9] -> [1,3H,3W,3]

Every format has the same interface. Input `input`: float32 [1, H, W, 4], the packed raw (R, G,
B, G; black 0, white 1) multiplied by the ratio and clipped at 1 - raw_io.pack_raw + raw_io.amplify
for the Sony data, camera.packed_input for any Bayer camera. Output `output`: float32
[1, 2H, 2W, 3], sRGB in [0, 1]. A Fuji model (--camera=Fuji) takes the 9-channel X-Trans packing
(camera.packed_raw, or camera.packed_input for the enhance command's whole-raw variant): input
[1, H, W, 9], output [1, 3H, 3W, 3]. H and W are free by default; Ascend's ATC compiler needs them
fixed (--height/--width, in packed pixels: 1424 x 2128 for a Sony frame, 1344 x 2010 for an X-T2
one), then:

    atc --model=export_atc/sid.pb --framework=3 --output=sid --soc_version=Ascend310 \\
        --input_shape="input:1,1424,2128,4"

--out_dir is one unit: the export is built in a hidden sibling folder, each format is run on the
same input as the checkpoint and compared (the frozen graph and the SavedModel must match it bit
for bit, same TensorFlow; ONNX under onnxruntime within 1e-4), a manifest <name>_manifest.json
records the checkpoint, its step, the formats and every file's checksum, and only then does the
new folder replace the old one, in one step (safe_files.replace_folder). A kill or a failure at any
moment leaves the complete old export or the complete new one, never a mix; what a killed run
left beside the folder is removed at the next start. The folder holds nothing else: one with
other files is refused before the model loads.
"""
import importlib.util
import json
import logging
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import camera  # noqa: E402
import cli
import inference  # noqa: E402  (TensorFlow is imported later, by its functions)
import safe_files

FORMATS = ('pb', 'savedmodel', 'onnx')
SERVING_SIGNATURE = 'serving_default'
ONNX_OPSET = 13
ONNX_TOLERANCE = 1e-4
CHECK_SIZE = (96, 144)  # packed pixels of the comparison input when H and W are free
CHECK_SEED = 0
MANIFEST = '%s_manifest.json'  # in the export folder, % --name: what it holds, where it came from


def define_flags():
    from absl import flags
    camera.define_flag(names=camera.DATASETS, sets='the input channels and output block (Sony 4 '
                       '-> 2x, Fuji 9 -> 3x; a bayer model is exported as Sony) and the default of '
                       '--checkpoint_dir')
    flags.adopt_module_key_flags(camera)
    flags.DEFINE_string('checkpoint_dir', './checkpoint/Sony/',
                        'trained model: folder with model.ckpt* (latest is used) or a prefix')
    flags.DEFINE_string('out_dir', './export', 'the export folder: <name>.pb, <name>_savedmodel/, '
                        '<name>.onnx and <name>%s, replaced as a whole' % (MANIFEST % ''))
    flags.DEFINE_string('name', 'sid', 'base name of the exported files')
    flags.DEFINE_integer('height', 0, 'fixed input height in packed pixels (0: any)', lower_bound=0)
    flags.DEFINE_integer('width', 0, 'fixed input width in packed pixels (0: any)', lower_bound=0)
    flags.DEFINE_list('formats', list(FORMATS), 'any of %s' % ', '.join(FORMATS))
    flags.register_validator('formats', lambda v: bool(v) and set(v) <= set(FORMATS),
                             message='--formats takes a comma-separated subset of %s'
                             % ', '.join(FORMATS))


def freeze(model):
    """The restored graph with its variables turned into constants, pruned to the output."""
    tf = cli.import_tensorflow()
    graph_def = model.session.graph.as_graph_def()
    return tf.graph_util.convert_variables_to_constants(model.session, graph_def,
                                                        [inference.OUTPUT_NAME])


def write_savedmodel(model, path):
    """A SavedModel with the variables and a serving signature {input} -> {output}."""
    tf = cli.import_tensorflow()
    builder = tf.saved_model.Builder(path)
    signature = tf.saved_model.predict_signature_def(
        inputs={inference.INPUT_NAME: model.input}, outputs={inference.OUTPUT_NAME: model.output})
    builder.add_meta_graph_and_variables(model.session, [tf.saved_model.SERVING],
                                         signature_def_map={SERVING_SIGNATURE: signature})
    builder.save()


def write_onnx(graph_def, path):
    """ONNX through tf2onnx, from the frozen graph."""
    with cli.sigint_held():
        import tf2onnx
    logging.getLogger(tf2onnx.__name__).setLevel(logging.WARNING)  # per-pass INFO lines
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, opset=ONNX_OPSET,
                                              input_names=[inference.INPUT_NAME + ':0'],
                                              output_names=[inference.OUTPUT_NAME + ':0'])
    with open(path, 'wb') as f:
        f.write(proto.SerializeToString())


def run_savedmodel(path, packed):
    tf = cli.import_tensorflow()
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.SERVING], path)
        signature = meta.signature_def[SERVING_SIGNATURE]
        return sess.run(signature.outputs[inference.OUTPUT_NAME].name,
                        {signature.inputs[inference.INPUT_NAME].name: packed})


def run_onnx(path, packed):
    with cli.sigint_held():
        import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: packed})[0]


def check_input(height, width, channels=camera.SONY.channels):
    """A reproducible amplified packed raw: a smooth scene with noise, clipped to [0, 1]."""
    height, width = height or CHECK_SIZE[0], width or CHECK_SIZE[1]
    rng = np.random.RandomState(CHECK_SEED)
    y, x = np.mgrid[:height, :width] / 7.0
    scene = 0.4 + 0.3 * np.sin(x + y)[..., None] + rng.normal(0, 0.1, (height, width, channels))
    return np.clip(scene, 0, 1).astype(np.float32)[None]


def export_names(name):
    """{format: the file or folder it is written to} of an export called `name`."""
    return {'pb': name + '.pb', 'savedmodel': name + '_savedmodel', 'onnx': name + '.onnx'}


def export(model, formats, folder, name, packed):
    """Write the chosen formats into `folder`; returns {format: path} and the checkpoint's own
    output on `packed`."""
    paths = dict((fmt, os.path.join(folder, entry)) for fmt, entry in export_names(name).items()
                 if fmt in formats)
    with model.session:
        reference = model.session.run(model.output, {model.input: packed})
        graph_def = freeze(model)
        if 'pb' in paths:
            with open(paths['pb'], 'wb') as out:
                out.write(graph_def.SerializeToString())
        if 'savedmodel' in paths:
            write_savedmodel(model, paths['savedmodel'])
    if 'onnx' in paths:
        print('converting to ONNX (tf2onnx)')
        sys.stdout.flush()
        write_onnx(graph_def, paths['onnx'])
    return paths, reference


def verify(paths, reference, packed, shown):
    """Compare every written format with the checkpoint's output ({format: max |difference|}); a
    mismatch is an error naming the format's path in the export folder `shown`."""
    diffs = {}
    for fmt, path in sorted(paths.items(), key=lambda item: FORMATS.index(item[0])):
        if fmt == 'pb':
            model = inference.session_from_graph(path)
            with model.session:
                out = model.session.run(model.output, {model.input: packed})
        elif fmt == 'savedmodel':
            out = run_savedmodel(path, packed)
        else:
            out = run_onnx(path, packed)
        diff = float(np.abs(out - reference).max())
        allowed = ONNX_TOLERANCE if fmt == 'onnx' else 0.0
        name = os.path.join(shown, os.path.basename(path))
        print('%s: max |difference| to the checkpoint %.3g (%s)'
              % (name, diff, 'allowed %g' % allowed if allowed else 'must be bit for bit'))
        if out.shape != reference.shape or diff > allowed:
            raise cli.SidError('%s: output differs from the checkpoint by %.3g (shape %s vs %s)'
                               % (name, diff, out.shape, reference.shape))
        diffs[fmt] = diff
    return diffs


def manifest(folder, model, profile, shape, diffs):
    """The manifest's content: the checkpoint, its step, the camera, the input shape, the formats
    with their measured difference, and the checksum of every file in `folder`."""
    tf = cli.import_tensorflow()
    import checkpoints
    from test_Sony import checkpoint_stamp
    files = {}
    for top, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(top, name)
            files[os.path.relpath(path, folder).replace(os.sep, '/')] = safe_files.file_digest(path)
    step = checkpoints.step_of(model.source)
    return {'checkpoint': os.path.abspath(model.source),
            'checkpoint_id': checkpoint_stamp(model.source).split()[0],
            'step': step if step >= 0 else None, 'camera': profile.name,
            'input': [1] + list(shape) + [profile.channels], 'formats': diffs,
            'tensorflow': tf.__version__, 'files': files}


def write_manifest(path, content):
    with open(path, 'w') as f:
        json.dump(content, f, indent=1, sort_keys=True)
        f.write('\n')


def check_out_dir(out_dir, name):
    """Refuse, before the model loads, an --out_dir that cannot become this export: a file in the
    way, a folder holding anything but an export called `name` (replacing the folder would lose
    it), or a parent folder where the new export cannot be built."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise cli.SidError('%s: is a file, not a folder; give --out_dir a folder for the export'
                           % out_dir)
    ours = set(export_names(name).values()) | {MANIFEST % name}
    others = sorted(set(os.listdir(out_dir)) - ours) if os.path.isdir(out_dir) else []
    if others:
        raise cli.SidError('%s: holds %s, not part of an export named %s; the export replaces '
                           'the whole folder: give an empty or new --out_dir'
                           % (out_dir, ', '.join(others[:3]) + (', ...' if others[3:] else ''),
                              name))
    safe_files.require_writable_dir(os.path.dirname(os.path.abspath(out_dir)), 'the new export')


def manifest_of(graph_path):
    """The manifest of the export a frozen graph belongs to, once the graph's checksum matches it;
    None for a graph without one (not written by this script, or by an older version). A graph
    its manifest does not describe (changed since, or mixed with another export) is refused."""
    folder, entry = os.path.split(os.path.abspath(graph_path))
    path = os.path.join(folder, MANIFEST % os.path.splitext(entry)[0])
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            content = json.load(f)
        expected = content['files'][entry]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise cli.SidError('%s: unreadable export manifest (%s: %s); export again'
                           % (path, type(e).__name__, e))
    if safe_files.file_digest(graph_path) != expected:
        raise cli.SidError('%s: differs from its export manifest %s (changed since, or from '
                           'another export); export again' % (graph_path, path))
    return content


def cannot_export(error, out_dir):
    """A failed write or TensorFlow call while building the export, as one line."""
    import checkpoints
    parent = os.path.dirname(os.path.abspath(out_dir))
    if isinstance(error, OSError):
        reason = safe_files.write_reason(error, parent)
    else:
        reason = 'no space left on %s' % parent if checkpoints.no_space(error) else \
            checkpoints.error_line(error)
    return cli.SidError('%s: cannot export (%s); %s' % (
        out_dir, reason, 'the previous export is unchanged' if os.path.isdir(out_dir) else
        'nothing was written'))


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    profile = camera.from_flags()
    if bool(f.height) != bool(f.width):
        raise cli.SidError('give both --height and --width (a fixed input), or neither')
    if 'onnx' in f.formats and importlib.util.find_spec('tf2onnx') is None:
        raise cli.SidError('ONNX export needs tf2onnx and onnxruntime (pip install tf2onnx '
                           'onnxruntime), or leave onnx out of --formats')
    out_dir = f.out_dir.rstrip('/\\') or f.out_dir
    parent, base = os.path.split(os.path.abspath(out_dir))
    check_out_dir(out_dir, f.name)
    safe_files.lock_folder(out_dir, '--out_dir',
                           os.path.join(parent, '.' + base + safe_files.LOCK_NAME))
    removed = safe_files.remove_temporaries(parent, lambda name: name == base)
    if removed:
        print('removed %d leftovers of an interrupted export from %s (%s)'
              % (len(removed), parent, ', '.join(removed)))

    tf = cli.import_tensorflow()  # only now: a bad flag or folder is refused in well under 1 s
    model = inference.session_from_checkpoint(f.checkpoint_dir, profile=profile,
                                              height=f.height or None, width=f.width or None)
    print('%s checkpoint %s; input %s [1, %s, %s, %d] -> output %s [1, %s, %s, 3]' % (
        profile.name, model.source, inference.INPUT_NAME, f.height or 'H', f.width or 'W',
        profile.channels, inference.OUTPUT_NAME, profile.block * f.height or '%dH' % profile.block,
        profile.block * f.width or '%dW' % profile.block))
    packed = check_input(f.height, f.width, profile.channels)
    build = None
    try:
        build = safe_files.new_temp_folder(parent, base)
        paths, reference = export(model, f.formats, build, f.name, packed)
        diffs = verify(paths, reference, packed, out_dir)
        write_manifest(os.path.join(build, MANIFEST % f.name),
                       manifest(build, model, profile, (f.height or None, f.width or None), diffs))
        safe_files.fsync_tree(build)
        build = safe_files.replace_folder(build, out_dir)  # now the old export, or None
    except (OSError, tf.errors.OpError) as e:
        raise cannot_export(e, out_dir)
    finally:
        if build is not None:  # a failed, interrupted or replaced export
            shutil.rmtree(build, ignore_errors=True)
    print('exported %s to %s (manifest %s)' % (', '.join(f.formats), out_dir, MANIFEST % f.name))


if __name__ == '__main__':
    cli.run(main, define_flags, hint='the model comes from --checkpoint_dir')
