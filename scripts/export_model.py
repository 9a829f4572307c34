"""Export a trained SID checkpoint for deployment: frozen graph (.pb), SavedModel, ONNX.

    python3 scripts/export_model.py --checkpoint_dir=checkpoint/Sony/ --out_dir=export
    python3 scripts/export_model.py --height=1424 --width=2128 --out_dir=export_atc  # fixed shape
    python3 scripts/export_model.py --camera=Fuji --out_dir=export_fuji  # [1,H,W,9] -> [1,3H,3W,3]

Every format has the same interface. Input `input`: float32 [1, H, W, 4], the packed raw (R, G,
B, G; black 0, white 1) multiplied by the ratio and clipped at 1 - sid_io.pack_raw + sid_io.amplify
for the Sony data, camera.packed_input for any Bayer camera. Output `output`: float32
[1, 2H, 2W, 3], sRGB in [0, 1]. A Fuji model (--camera=Fuji) takes the 9-channel X-Trans packing
(camera.packed_raw, or camera.packed_input for the enhance command's whole-raw variant): input
[1, H, W, 9], output [1, 3H, 3W, 3]. H and W are free by default; Ascend's ATC compiler needs them
fixed (--height/--width, in packed pixels: 1424 x 2128 for a Sony frame, 1344 x 2010 for an X-T2
one), then:

    atc --model=export_atc/sid.pb --framework=3 --output=sid --soc_version=Ascend310 \\
        --input_shape="input:1,1424,2128,4"

After writing, each export is run on the same input as the checkpoint and compared: the frozen
graph and the SavedModel must match it bit for bit (same TensorFlow), ONNX (onnxruntime) within
1e-4; otherwise the run fails and nothing is left under the export's name.
"""
import importlib.util
import logging
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import camera  # noqa: E402
import cli
import inference  # noqa: E402  (TensorFlow is imported later, by its functions)
import sid_io  # noqa: E402

FORMATS = ('pb', 'savedmodel', 'onnx')
SERVING_SIGNATURE = 'serving_default'
ONNX_OPSET = 13
ONNX_TOLERANCE = 1e-4
CHECK_SIZE = (96, 144)  # packed pixels of the comparison input when H and W are free
CHECK_SEED = 0


def define_flags():
    from absl import flags
    camera.define_flag(names=camera.DATASETS, sets='the input channels and output block (Sony 4 '
                       '-> 2x, Fuji 9 -> 3x; a bayer model is exported as Sony) and the default of '
                       '--checkpoint_dir')
    flags.adopt_module_key_flags(camera)
    flags.DEFINE_string('checkpoint_dir', './checkpoint/Sony/',
                        'trained model: folder with model.ckpt* (latest is used) or a prefix')
    flags.DEFINE_string('out_dir', './export', 'where <name>.pb, <name>_savedmodel/ and '
                        '<name>.onnx go')
    flags.DEFINE_string('name', 'sid', 'base name of the exported files')
    flags.DEFINE_integer('height', 0, 'fixed input height in packed pixels (0: any)', lower_bound=0)
    flags.DEFINE_integer('width', 0, 'fixed input width in packed pixels (0: any)', lower_bound=0)
    flags.DEFINE_list('formats', list(FORMATS), 'any of %s' % ', '.join(FORMATS))
    flags.register_validator('formats', lambda v: bool(v) and set(v) <= set(FORMATS),
                             message='--formats takes a comma-separated subset of %s'
                             % ', '.join(FORMATS))


def freeze(model):
    """The restored graph with its variables turned into constants, pruned to the output."""
    import tensorflow.compat.v1 as tf
    graph_def = model.session.graph.as_graph_def()
    return tf.graph_util.convert_variables_to_constants(model.session, graph_def,
                                                        [inference.OUTPUT_NAME])


def write_savedmodel(model, path):
    """A SavedModel with the variables and a serving signature {input} -> {output}, written next
    to `path` and renamed into place (a directory cannot be written atomically otherwise)."""
    import tensorflow.compat.v1 as tf
    folder = os.path.dirname(os.path.abspath(path))
    tmp = tempfile.mkdtemp(dir=folder, prefix='.tmp-')
    build = os.path.join(tmp, 'model')  # the builder wants a folder that does not exist yet
    try:
        builder = tf.saved_model.Builder(build)
        signature = tf.saved_model.predict_signature_def(
            inputs={inference.INPUT_NAME: model.input},
            outputs={inference.OUTPUT_NAME: model.output})
        builder.add_meta_graph_and_variables(model.session, [tf.saved_model.SERVING],
                                             signature_def_map={SERVING_SIGNATURE: signature})
        builder.save()
        if os.path.isdir(path):
            os.rename(path, os.path.join(tmp, 'old'))
        os.rename(build, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_onnx(graph_def, path):
    """ONNX through tf2onnx, from the frozen graph."""
    import tf2onnx
    logging.getLogger(tf2onnx.__name__).setLevel(logging.WARNING)  # per-pass INFO lines
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, opset=ONNX_OPSET,
                                              input_names=[inference.INPUT_NAME + ':0'],
                                              output_names=[inference.OUTPUT_NAME + ':0'])
    with sid_io.atomic_write(path) as f:
        f.write(proto.SerializeToString())


def run_savedmodel(path, packed):
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.SERVING], path)
        signature = meta.signature_def[SERVING_SIGNATURE]
        return sess.run(signature.outputs[inference.OUTPUT_NAME].name,
                        {signature.inputs[inference.INPUT_NAME].name: packed})


def run_onnx(path, packed):
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


def export(model, formats, stem, packed, written):
    """Write the chosen formats to <stem>.pb, <stem>_savedmodel, <stem>.onnx, adding (format,
    path) to `written` as each one lands; returns the checkpoint's own output on `packed`."""
    with model.session:
        reference = model.session.run(model.output, {model.input: packed})
        graph_def = freeze(model)
        if 'pb' in formats:
            with sid_io.atomic_write(stem + '.pb') as out:
                out.write(graph_def.SerializeToString())
            written.append(('pb', stem + '.pb'))
        if 'savedmodel' in formats:
            write_savedmodel(model, stem + '_savedmodel')
            written.append(('savedmodel', stem + '_savedmodel'))
    if 'onnx' in formats:
        write_onnx(graph_def, stem + '.onnx')
        written.append(('onnx', stem + '.onnx'))
    return reference


def verify(written, reference, packed):
    """Compare every written export with the checkpoint's output; a mismatch is an error."""
    for fmt, path in written:
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
        print('%s: max |difference| to the checkpoint %.3g (%s)'
              % (path, diff, 'allowed %g' % allowed if allowed else 'must be bit for bit'))
        if out.shape != reference.shape or diff > allowed:
            raise sid_io.SidError('%s: output differs from the checkpoint by %.3g (shape %s vs %s)'
                                  % (path, diff, out.shape, reference.shape))


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    profile = camera.from_flags()
    if bool(f.height) != bool(f.width):
        raise sid_io.SidError('give both --height and --width (a fixed input), or neither')
    if 'onnx' in f.formats and importlib.util.find_spec('tf2onnx') is None:
        raise sid_io.SidError('ONNX export needs tf2onnx and onnxruntime (pip install tf2onnx '
                              'onnxruntime), or leave onnx out of --formats')

    model = inference.session_from_checkpoint(f.checkpoint_dir, profile=profile,
                                              height=f.height or None, width=f.width or None)
    print('%s checkpoint %s; input %s [1, %s, %s, %d] -> output %s [1, %s, %s, 3]' % (
        profile.name, model.source, inference.INPUT_NAME, f.height or 'H', f.width or 'W',
        profile.channels, inference.OUTPUT_NAME, profile.block * f.height or '%dH' % profile.block,
        profile.block * f.width or '%dW' % profile.block))
    packed = check_input(f.height, f.width, profile.channels)
    os.makedirs(f.out_dir, exist_ok=True)
    written = []
    try:
        reference = export(model, f.formats, os.path.join(f.out_dir, f.name), packed, written)
        verify(written, reference, packed)
    except BaseException:
        for _, path in written:  # an export that does not reproduce the model is not left behind
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        raise


if __name__ == '__main__':
    cli.run(main, define_flags, hint='the model comes from --checkpoint_dir')
