"""The training data of train_Sony.py: pairs grouped into scenes, the epoch's crops (the official
sampling rule), and a tf.data pipeline that cuts them from the decoded-raw cache ahead of the step.

One epoch visits every scene once: per scene one of its short exposures at random, a uniform crop
position and three coin flips (vertical flip, horizontal flip, transpose), as the authors'
train_Sony.py draws them. A crop is cut and flipped in one copy of uint16 pixels straight from a
memory map (raw_cache), then only the crop is normalised, amplified and clipped: memory stays
flat in the dataset size. The sampling depends only on (seed, epoch, rank), so a resumed run sees
the same data as an uninterrupted one.
"""
import math
import time
from collections import OrderedDict, namedtuple

import numpy as np

import camera
import cli
import raw_cache
import raw_io
import sid_lists

PREFETCH_BATCHES = 4     # batches ready ahead of the step

Crop = namedtuple('Crop', 'pair y x flip_v flip_h transpose')


def training_pairs(pairs, first_burst_only=False):
    """The pairs a step may draw from. The official script globs `<scene>_00*` and so only ever
    trains on burst frame 00 (of each exposure time); by default every short exposure in the list
    is used, as the paper's text reads."""
    if not first_burst_only:
        return pairs
    return [p for p in pairs if sid_lists.parse_name(p.short)[1] == 0]


def group_scenes(pairs):
    """Scene id -> indices of its pairs, in scene order: one epoch visits every scene once."""
    scenes = OrderedDict()
    for i, pair in enumerate(pairs):
        scenes.setdefault(sid_lists.parse_name(pair.short)[0], []).append(i)
    return OrderedDict(sorted(scenes.items()))


def steps_per_epoch(n_scenes, world_size, batch_size):
    """Every rank runs the same number of steps (collectives would hang otherwise): the largest
    shard, in batches. Shorter shards top up with random scenes of their own."""
    return int(math.ceil(int(math.ceil(n_scenes / float(world_size))) / float(batch_size)))


def epoch_crops(scenes, shapes, ps, samples, rng):
    """The crops of one epoch on one rank: the official sampling rule.

    A random permutation of this rank's scenes (topped up to `samples`), per scene one of its short
    exposures at random, a uniform crop position (inclusive of the last one, unlike the official
    randint's off-by-one) and three coin flips: vertical flip, horizontal flip, transpose.
    """
    ids = list(scenes)
    order = list(rng.permutation(len(ids)))
    order += list(rng.randint(0, len(ids), samples - len(order)))
    crops = []
    for k in order:
        members = scenes[ids[k]]
        pair = members[rng.randint(len(members))]
        height, width = shapes[pair]
        y, x = rng.randint(0, height - ps + 1), rng.randint(0, width - ps + 1)
        flip_v, flip_h, transpose = (int(rng.randint(2)) for _ in range(3))
        crops.append(Crop(pair, int(y), int(x), flip_v, flip_h, transpose))
    return crops


def epoch_rng(seed, epoch, rank):
    """The epoch's sampling depends only on (seed, epoch, rank): a resumed run sees the same
    data as an uninterrupted one."""
    return np.random.RandomState([seed, epoch, rank])


def pixels(image):
    """An [H, W, C] C-contiguous array as [H, W] opaque pixels (C channels per item), so that
    flips and transposes move whole pixels: numpy's strided copies are several times faster."""
    return image.view('V%d' % (image.shape[2] * image.itemsize))[..., 0]


def augment(px, crop):
    """The official augmentation, in its order: flip rows, flip columns, swap the two axes."""
    if crop.flip_v:
        px = px[::-1]
    if crop.flip_h:
        px = px[:, ::-1]
    if crop.transpose:
        px = px.T
    return px


def cut_patch(packed, rgb, ratio, crop, ps, profile=camera.SONY, levels=None):
    """One training pair: (float32 input [ps,ps,channels], target [b ps,b ps,3]) at `crop`, b the
    camera's block (the ground truth's crop starts at b times the packed offset), the input
    normalised with `levels` (black, white), by default the profile's constants.

    The crop is cut and flipped in one copy of uint16 pixels straight from the memory map, then
    only the crop is amplified, clipped and converted to float.
    """
    def cut(image, scale):
        y, x, size = scale * crop.y, scale * crop.x, scale * ps
        flipped = np.ascontiguousarray(augment(pixels(image)[y:y + size, x:x + size], crop))
        return flipped.view(image.dtype).reshape(flipped.shape + image.shape[2:])

    inp = raw_io.normalize(cut(packed, 1), *(levels or camera.levels(profile)))
    return raw_io.amplify(inp, ratio, out=inp), raw_io.gt_to_float(cut(rgb, profile.block))


class CachedPairs(object):
    """The training pairs as cache entries; crops are read from fresh memory maps, so nothing of
    the dataset stays resident in this process (the page cache keeps hot files fast anyway)."""

    def __init__(self, pairs, entries, profile=camera.SONY):
        self.pairs, self.profile = pairs, profile
        packing = camera.PACKINGS[profile.packing]
        input_kind, gt_kind = packing.cache_kinds
        self.inputs = [entries.get((p.short, input_kind)) for p in pairs]  # None: another rank's
        self.targets = [entries.get((p.long, gt_kind)) for p in pairs]  # novm
        # The file's levels of each input (None where the profile's constants apply)
        self.level_entries = [entries.get((p.short, packing.levels_kind)) for p in pairs]
        self.ratios = [sid_lists.exposure_ratio(p.short, p.long) for p in pairs]  # novm
        self.scene_ids = [sid_lists.parse_name(p.short)[0] for p in pairs]

    def check_shapes(self, indices, ps):
        """{pair: (h, w)}: packed [h, w, channels] inputs with [b h, b w, 3] targets (b the
        camera's block), >= ps on a side."""
        channels, block = self.profile.channels, self.profile.block
        shapes = {}
        for i in indices:
            packed = raw_cache.open_cached(self.inputs[i])
            rgb = raw_cache.open_cached(self.targets[i])
            h, w, c = packed.shape
            where = '%s (list line %d)' % (self.pairs[i].short, self.pairs[i].line)
            target = self.pairs[i].long  # novm (the list's long-exposure field, not Python 2)
            if c != channels or rgb.shape != (block * h, block * w, 3):
                raise cli.SidError('%s: packed input %s does not match ground truth %s of %s'
                                   % (where, packed.shape, rgb.shape, target))
            if min(h, w) < ps:
                raise cli.SidError('%s: packed size %dx%d is smaller than --ps=%d'
                                   % (where, h, w, ps))
            shapes[i] = (h, w)
        return shapes

    def patch(self, crop, ps):
        packed = raw_cache.open_cached(self.inputs[crop.pair])
        rgb = raw_cache.open_cached(self.targets[crop.pair])
        return cut_patch(packed, rgb, self.ratios[crop.pair], crop, ps, self.profile,
                         self.levels(crop.pair))

    def levels(self, i):
        """(black, white) per packed channel of pair i's input: the profile's, or its file's."""
        entry = self.level_entries[i]
        return camera.levels(self.profile, entry and raw_cache.read_levels_entry(entry))


def input_pipeline(data, crops, ps, batch_size, threads=1):
    """tf.data: crop plans (from the callable `crops`) -> numpy crops in `threads` parallel
    threads -> batches.

    Yields (input [N,ps,ps,channels], target [N,b ps,b ps,3], scene id [N], ratio [N], ready time
    [N]), b the camera's block;
    the ready time (when the crop was finished) tells how long a step waited for its data.
    """
    tf = cli.import_tensorflow()

    def plans():
        for crop in crops():
            yield tuple(crop)

    def load(*plan):
        crop = Crop(*(int(v) for v in plan))
        raw, gt = data.patch(crop, ps)
        return (raw, gt, np.int32(data.scene_ids[crop.pair]), np.float32(data.ratios[crop.pair]),
                np.float64(time.time()))

    @tf.autograph.experimental.do_not_convert  # plain graph code: skip seconds of autograph
    def load_op(*plan):
        raw, gt, scene, ratio, ready = tf.numpy_function(
            load, list(plan), [tf.float32, tf.float32, tf.int32, tf.float32, tf.float64])
        raw.set_shape([ps, ps, data.profile.channels])
        gt.set_shape([data.profile.block * ps, data.profile.block * ps, 3])
        for t in (scene, ratio, ready):
            t.set_shape([])
        return raw, gt, scene, ratio, ready

    ds = tf.data.Dataset.from_generator(plans, (tf.int32,) * len(Crop._fields),
                                        (tf.TensorShape([]),) * len(Crop._fields))
    ds = ds.map(load_op, num_parallel_calls=threads)
    if batch_size == 1:  # a reshape instead of batch()'s copy of every patch
        ds = ds.map(tf.autograph.experimental.do_not_convert(
            lambda *t: tuple(tf.expand_dims(x, 0) for x in t)))
    else:
        ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.prefetch(PREFETCH_BATCHES)
    return tf.data.make_one_shot_iterator(ds).get_next()
