"""pipeline: the official sampling rule (seeded, every scene once per epoch, every rank the same
number of steps), and patches from the decoded-raw cache that equal the official in-RAM ones
exactly, for the paper's Sony levels and for any Bayer camera's own levels."""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import camera
import pipeline
import raw_cache
import raw_io
import sid_lists

PS = 32


@pytest.fixture(scope='module')
def data(tiny_dataset):
    """The session's tiny dataset; read-only here (caches go to tmp_path)."""
    return tiny_dataset


def test_first_burst_only_keeps_burst_00_of_every_scene(data):
    pairs = sid_lists.read_list(str(data / 'Sony_train_list.txt'), str(data))
    assert pipeline.training_pairs(pairs) == pairs and len(pairs) == 6
    first = pipeline.training_pairs(pairs, first_burst_only=True)
    assert [os.path.basename(p.short)[:8] for p in first] == ['00001_00', '00002_00', '00003_00']
    assert list(pipeline.group_scenes(first)) == list(pipeline.group_scenes(pairs))


@pytest.mark.parametrize('n_scenes,world,batch', [(3, 1, 1), (7, 2, 1), (7, 3, 2), (161, 8, 1)])
def test_every_rank_runs_the_same_steps_and_an_epoch_covers_every_scene(n_scenes, world, batch):
    scenes = dict((1 + s, [s]) for s in range(n_scenes))
    shapes = dict((s, (40, 60)) for s in range(n_scenes))
    steps = pipeline.steps_per_epoch(n_scenes, world, batch)
    seen = set()
    for rank in range(world):
        mine = dict((s, scenes[s]) for s in sorted(scenes)[rank::world])
        crops = pipeline.epoch_crops(mine, shapes, PS, steps * batch,
                                     pipeline.epoch_rng(0, 1, rank))
        assert len(crops) == steps * batch
        seen |= set(c.pair for c in crops)
    assert seen == set(range(n_scenes))


def test_crop_sampling_is_seeded_uniform_and_flips_each_way():
    scenes = {1: [0, 1], 2: [2]}
    shapes = {0: (40, 60), 1: (40, 60), 2: (34, 32)}
    draw = lambda seed, epoch: pipeline.epoch_crops(scenes, shapes, PS, 400,  # noqa: E731
                                                    pipeline.epoch_rng(seed, epoch, 0))
    assert draw(0, 5) == draw(0, 5) and draw(0, 5) != draw(0, 6) and draw(0, 5) != draw(1, 5)
    crops = draw(0, 1)
    assert set(c.pair for c in crops) == {0, 1, 2}
    for c in crops:
        h, w = shapes[c.pair]
        assert 0 <= c.y <= h - PS and 0 <= c.x <= w - PS
    assert {c.y for c in crops if c.pair == 2} == {0, 1, 2}  # last position included
    for field in ('flip_v', 'flip_h', 'transpose'):
        share = np.mean([getattr(c, field) for c in crops])
        assert 0.4 < share < 0.6


def official_patch(full_input, full_gt, crop, ps):
    """The official code's order: crop the RAM images, flip axis 1, flip axis 2, transpose, clip."""
    a = full_input[None, crop.y:crop.y + ps, crop.x:crop.x + ps, :]
    b = full_gt[None, crop.y * 2:crop.y * 2 + ps * 2, crop.x * 2:crop.x * 2 + ps * 2, :]
    if crop.flip_v:
        a, b = np.flip(a, axis=1), np.flip(b, axis=1)
    if crop.flip_h:
        a, b = np.flip(a, axis=2), np.flip(b, axis=2)
    if crop.transpose:
        a, b = np.transpose(a, (0, 2, 1, 3)), np.transpose(b, (0, 2, 1, 3))
    return np.minimum(a, 1.0)[0], b[0]


def test_pipeline_gives_exactly_the_official_in_ram_patches(data, tmp_path):
    pairs = sid_lists.read_list(os.path.join(str(data), 'Sony_train_list.txt'), str(data))
    raws = [(p.short, 'input') for p in pairs] + [(p[1], 'gt') for p in pairs]
    entries = raw_cache.build_cache(raws, str(tmp_path / 'cache'), str(data), workers=1,
                                    progress=False)
    cached = pipeline.CachedPairs(pairs, entries)
    scenes = pipeline.group_scenes(pairs)
    shapes = cached.check_shapes(range(len(pairs)), PS)
    crops = pipeline.epoch_crops(scenes, shapes, PS, 24, pipeline.epoch_rng(7, 1, 0))
    assert len(set(crops)) == 24 and {c.transpose for c in crops} == {0, 1}
    with tf.Graph().as_default():
        batch = pipeline.input_pipeline(cached, lambda: iter(crops), PS, 1)
        with tf.Session() as sess:
            got = [sess.run(batch) for _ in crops]
    # The official path: whole images decoded to float32 and amplified (unclipped) in RAM.
    full = {}
    for crop, (inp, gt, scene, ratio, ready) in zip(crops, got):
        pair = pairs[crop.pair]
        r = sid_lists.exposure_ratio(pair.short, pair[1])
        if crop.pair not in full:
            full[crop.pair] = (raw_io.pack_raw(pair.short) * np.float32(r),
                               raw_io.read_ground_truth(pair[1]))
        want_inp, want_gt = official_patch(full[crop.pair][0], full[crop.pair][1], crop, PS)
        np.testing.assert_array_equal(inp[0], want_inp)
        np.testing.assert_array_equal(gt[0], want_gt)
        assert (scene[0], ratio[0]) == (sid_lists.parse_name(pair.short)[0], r)
        assert ready[0] > 0


def pipeline_patches(data, crops):
    with tf.Graph().as_default():
        batch = pipeline.input_pipeline(data, lambda: iter(crops), PS, 1)
        with tf.Session() as sess:
            return [sess.run(batch)[:2] for _ in crops]


def cached_pairs(list_path, data_dir, cache, profile):
    pairs = sid_lists.read_list(list_path, data_dir)
    entries = raw_cache.build_cache(camera.cache_jobs(pairs, profile), cache, data_dir, workers=1,
                                    progress=False)
    return pairs, pipeline.CachedPairs(pairs, entries, profile)


def test_bayer_patches_are_the_formula_with_each_files_levels_and_the_red_cut(
        tiny_bayer_dataset, tmp_path):
    """Another camera (12-bit GRBG, black 600-603 per site): input (counts - black_c) /
    (white_c - black_c) at the R, G, B, G sites of the mosaic cut to start on red (the first and
    last columns go), amplified, clipped; target the development cut alike, at 2x the offset."""
    import rawpy
    pairs, data = cached_pairs(str(tiny_bayer_dataset / 'Bayer_train_list.txt'),
                               str(tiny_bayer_dataset), str(tmp_path), camera.BAYER)
    shapes = data.check_shapes(range(len(pairs)), PS)
    assert set(shapes.values()) == {(48, 67)}  # 96 x 136 -> 96 x 134
    crops = pipeline.epoch_crops(pipeline.group_scenes(pairs), shapes, PS, 6,
                                 pipeline.epoch_rng(3, 1, 0))
    black = {(0, 0): 600, (0, 1): 601, (1, 0): 602, (1, 1): 603}  # the generator's, per site
    for crop, (inp, gt) in zip(crops, pipeline_patches(data, crops)):
        pair = pairs[crop.pair]
        with rawpy.imread(pair.short) as raw:
            counts = raw.raw_image_visible.astype(np.float32)[:, 1:-1]  # R at column 1
        full = np.stack([(np.maximum(counts[y::2, x::2] - black[(y, (x + 1) % 2)], 0) /
                          np.float32(4095 - black[(y, (x + 1) % 2)]))
                         for y, x in raw_io.BAYER_OFFSETS], axis=-1)
        full *= np.float32(sid_lists.exposure_ratio(pair.short, pair.long))
        with rawpy.imread(pair.long) as raw:
            rgb = raw.postprocess(**dict(raw_io.GT_POSTPROCESS, user_flip=0))[:, 1:-1]
        want = official_patch(full, rgb.astype(np.float32) / np.float32(65535), crop, PS)
        np.testing.assert_allclose(inp[0], want[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(gt[0], want[1])
        assert 0 < inp[0].mean() and inp[0].max() <= 1


def test_bayer_path_on_rggb_raws_with_the_sony_levels_gives_the_sony_patches(data, tmp_path):
    """The Sony set's raws (RGGB, 512/16383, even sides: the cut keeps everything) through
    --camera=bayer: the same patches bit for bit, from cache entries of their own kinds."""
    list_path = os.path.join(str(data), 'Sony_train_list.txt')
    pairs, sony = cached_pairs(list_path, str(data), str(tmp_path), camera.SONY)
    _, bayer = cached_pairs(list_path, str(data), str(tmp_path), camera.BAYER)
    shapes = sony.check_shapes(range(len(pairs)), PS)
    assert bayer.check_shapes(range(len(pairs)), PS) == shapes
    assert set(sony.inputs).isdisjoint(bayer.inputs) and set(sony.targets).isdisjoint(bayer.targets)
    crops = pipeline.epoch_crops(pipeline.group_scenes(pairs), shapes, PS, 6,
                                 pipeline.epoch_rng(5, 1, 0))
    for (a, b), (c, d) in zip(pipeline_patches(sony, crops), pipeline_patches(bayer, crops)):
        assert a.tobytes() == c.tobytes() and b.tobytes() == d.tobytes()
