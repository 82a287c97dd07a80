"""Tests of vaebook.data.faces: deterministic factors, what each factor draws, and the cached dataset."""
import os
import pickle
import stat
import warnings

import numpy as np
import pytest
import torch

from vaebook.data import faces
from vaebook.data.faces import (ATTR_NAMES, FACTOR_LEVELS, FACTOR_NAMES, IMAGE_SIZE, SPLITS,
                           FacesDataset, attributes, render, render_indices, sample_factors)

F = {name: j for j, name in enumerate(FACTOR_NAMES)}
A = {name: j for j, name in enumerate(ATTR_NAMES)}
IDX = torch.arange(65_000, 65_024)  # a few test-split faces


@pytest.fixture(scope="module")
def base():
    """Factors and images of IDX, rendered once for the module."""
    f = sample_factors(IDX)
    return f, render(f, noise_seed=IDX)


def changed_pixels(img0, img1, tol=0.02):
    """(N, H, W) mask of pixels whose colour moved by more than tol in some channel."""
    return (img0 - img1).abs().amax(dim=1) > tol


def with_factor(f, name, value):
    f = f.clone()
    f[:, F[name]] = value
    return f

# ----------------------------------------------------------------------------------- factors


def test_factors_are_pinned_and_independent_of_the_batch():
    # the dataset must never change silently: these numbers are the first factors of two faces
    pinned = torch.tensor([[0.8656507, 0.2736224, 0.4740512, 0.5948764],
                           [0.1828718, 0.7804822, 0.9548671, 0.2036561]])
    torch.testing.assert_close(sample_factors(torch.tensor([0, 12_345]))[:, :4], pinned,
                               atol=1e-6, rtol=0)
    many = sample_factors(torch.arange(0, 200))
    alone = torch.cat([sample_factors(torch.tensor([i])) for i in (3, 150, 7)])
    assert torch.equal(alone, many[[3, 150, 7]])
    assert many.dtype == torch.float32 and many.shape == (200, len(FACTOR_NAMES))


def test_factor_ranges_levels_and_frequencies():
    f = sample_factors(torch.arange(20_000))
    for name, j in F.items():
        col = f[:, j]
        if name in FACTOR_LEVELS:
            assert torch.equal(col, col.round()), name
            assert set(col.long().unique().tolist()) == set(range(FACTOR_LEVELS[name])), name
        else:
            assert 0.0 <= col.min() and col.max() < 1.0, name
            assert 0.45 < col.mean() < 0.55, name  # uniform, not stuck
    assert 0.22 < f[:, F["eyeglasses"]].mean() < 0.28
    assert 0.27 < f[:, F["earrings"]].mean() < 0.33
    assert 0.27 < f[:, F["necktie"]].mean() < 0.33
    # different factors of one face are not copies of one random number
    assert abs(np.corrcoef(f[:, F["gaze_x"]], f[:, F["smile"]])[0, 1]) < 0.05


def test_attributes_follow_the_factors():
    f = sample_factors(torch.arange(5_000))
    a = attributes(f)
    assert a.shape == (5_000, len(ATTR_NAMES)) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    for attr, factor in [("Eyeglasses", "eyeglasses"), ("Wearing_Earrings", "earrings"),
                         ("Wearing_Necktie", "necktie")]:
        assert torch.equal(a[:, A[attr]], f[:, F[factor]])
    assert torch.equal(a[:, A["Smiling"]], (f[:, F["smile"]] > 0.6).float())
    bald = f[:, F["hair_style"]] == faces.HAIR_STYLES.index("bald")
    assert torch.equal(a[:, A["Bald"]].bool(), bald)
    colours = a[:, [A["Black_Hair"], A["Blond_Hair"], A["Brown_Hair"], A["Gray_Hair"]]]
    assert torch.all(colours[bald] == 0) and torch.all(colours.sum(1) <= 1)
    blond = (f[:, F["hair_colour"]] == faces.HAIR_COLOURS.index("blond")) & ~bald
    assert torch.equal(a[:, A["Blond_Hair"]].bool(), blond)
    assert 0.05 < a.mean(0).min() and a.mean(0).max() < 0.95  # every attribute varies

# ----------------------------------------------------------------------------------- drawing


def test_render_shape_range_and_determinism(base):
    f, img = base
    assert img.shape == (len(IDX), 3, IMAGE_SIZE, IMAGE_SIZE) and img.dtype == torch.float32
    assert img.device == f.device
    assert img.min() >= 0 and img.max() <= 1 and img.std() > 0.1
    torch.testing.assert_close(render_indices(IDX), img, atol=0, rtol=0)
    # the same face alone, or in another batch in another order, is the same image
    torch.testing.assert_close(render_indices(IDX[5:6])[0], img[5], atol=1e-6, rtol=0)
    torch.testing.assert_close(render_indices(IDX.flip(0)).flip(0), img, atol=1e-6, rtol=0)
    # every pair of faces differs clearly
    dist = (img.flatten(1)[:, None] - img.flatten(1)[None]).abs().mean(-1)
    assert dist[~torch.eye(len(IDX), dtype=torch.bool)].min() > 0.02


def test_render_rejects_wrong_factor_shape():
    with pytest.raises(ValueError, match="factors must be"):
        render(torch.zeros(2, len(FACTOR_NAMES) - 1))


def test_noise_seed_only_changes_the_background(base):
    f, img = base
    other = render(f[:4], noise_seed=IDX[:4] + 1_000)
    moved = changed_pixels(img[:4], other, tol=0.005)
    assert moved.flatten(1).sum(1).min() > 200
    # the default seed depends on background_hue only: editing gaze keeps the texture
    a, b = render(f[:4]), render(with_factor(f[:4], "gaze_x", 0.0))
    assert changed_pixels(a, b, tol=0.005).flatten(1).sum(1).max() < 80


def test_gaze_changes_only_the_eyes(base):
    f, _ = base
    f = with_factor(f, "eyeglasses", 0.0)  # lens tint would blur the comparison
    left, right = render(with_factor(f, "gaze_x", 0.0)), render(with_factor(f, "gaze_x", 1.0))
    moved = changed_pixels(left, right)
    counts = moved.flatten(1).sum(1)
    assert counts.min() >= 8 and counts.max() <= 80, counts
    box = faces.face_box(f)
    pix = lambda v: (v + 1) / faces.PX - 0.5  # image units -> pixel coordinate
    rows, cols = torch.arange(IMAGE_SIZE).view(1, -1, 1), torch.arange(IMAGE_SIZE).view(1, 1, -1)
    near_eyes = ((rows - pix(box["ey"]).view(-1, 1, 1)).abs() <= 4) & \
                ((cols - pix(box["cx"]).view(-1, 1, 1)).abs() <= (box["ex"] / faces.PX + 5).view(-1, 1, 1))
    assert not (moved & ~near_eyes).any()


def test_big_factors_change_many_pixels(base):
    f, img = base
    f = with_factor(f, "hair_style", float(faces.HAIR_STYLES.index("long")))
    black = render(with_factor(f, "hair_colour", 0.0), IDX)
    blond = render(with_factor(f, "hair_colour", 1.0), IDX)
    assert changed_pixels(black, blond).flatten(1).sum(1).min() > 300
    assert changed_pixels(img, render(with_factor(base[0], "background_hue", 0.5), IDX)) \
        .flatten(1).sum(1).median() > 1000


@pytest.mark.parametrize("name, rows", [("earrings", (20, 50)), ("necktie", (40, 64)),
                                        ("eyeglasses", (10, 40))])
def test_accessories_are_drawn_where_they_belong(base, name, rows):
    f, _ = base
    moved = changed_pixels(render(with_factor(f, name, 0.0), IDX), render(with_factor(f, name, 1.0), IDX))
    counts = moved.flatten(1).sum(1)
    small = name != "eyeglasses"
    assert counts.min() >= 5 and (counts.max() <= 60 if small else counts.min() > 80), counts
    assert not moved[:, : rows[0]].any() and not moved[:, rows[1]:].any()


def test_render_follows_the_factors_device():
    f = sample_factors(IDX[:2]).to(torch.float64)  # other dtypes are accepted too
    img = render(f)
    assert img.device == f.device and img.dtype == torch.float32
    if torch.cuda.is_available():
        gpu = render(f.cuda(), noise_seed=IDX[:2].cuda())
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), render(f, noise_seed=IDX[:2]), atol=1e-4, rtol=0)

# ----------------------------------------------------------------------------------- dataset


def test_splits_are_disjoint_with_documented_sizes(tmp_path, monkeypatch):
    assert SPLITS == {"train": (0, 60_000), "valid": (60_000, 65_000), "test": (65_000, 75_000)}
    ranges = sorted(SPLITS.values())
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))
    monkeypatch.setattr(faces, "render_uint8", lambda *a, **k: pytest.fail("rendered too early"))
    sizes = {s: len(FacesDataset(s, cache_dir=tmp_path)) for s in SPLITS}
    assert sizes == {"train": 60_000, "valid": 5_000, "test": 10_000}
    d = FacesDataset("valid", cache_dir=tmp_path, limit=7)
    assert len(d) == 7 and d.indices.tolist() == list(range(60_000, 60_007))
    assert d.factors.shape == (7, len(FACTOR_NAMES)) and d.attrs.shape == (7, len(ATTR_NAMES))
    assert d.factor_names == FACTOR_NAMES and d.attr_names == ATTR_NAMES
    assert d.factor_levels == FACTOR_LEVELS
    assert not list(tmp_path.iterdir())  # nothing written until images are needed


def test_bad_split_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="train, valid, test"):
        FacesDataset("training", cache_dir=tmp_path)


SMALL = {"train": (0, 40), "valid": (60_000, 60_040), "test": (65_000, 65_040)}


@pytest.fixture
def small(monkeypatch):
    """Splits of 40 faces: a dataset draws its whole split, so the tests keep splits small."""
    monkeypatch.setattr(faces, "SPLITS", SMALL)
    faces._VERIFIED.clear()


def drawn(split, n=None):
    lo, hi = SPLITS[split]  # the real split's indices
    idx = torch.arange(lo, lo + (n or SMALL[split][1] - SMALL[split][0]))
    return faces.render_uint8(faces.sample_factors(idx), idx)


def test_items_match_render_and_index_like_a_list(tmp_path, small):
    d = FacesDataset("test", cache_dir=tmp_path, limit=24)
    img, attrs = d[3]
    assert img.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and img.dtype == torch.float32
    torch.testing.assert_close(img, render_indices(IDX[3:4])[0], atol=0.5 / 255 + 1e-6, rtol=0)
    assert torch.equal(attrs, attributes(sample_factors(IDX[3:4]))[0])
    assert torch.equal(d[-1][0], d[23][0])
    for bad in (24, -25):
        with pytest.raises(IndexError):
            d[bad]
    batch = d.__getitems__([5, 0, -1, 5])
    for (im, at), i in zip(batch, [5, 0, -1, 5]):
        assert torch.equal(im, d[i][0]) and torch.equal(at, d[i][1])
    with pytest.raises(IndexError):
        d.__getitems__([0, 99])
    arr = d.images_uint8()
    assert arr.dtype == np.uint8 and arr.shape == (24, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_a_split_is_drawn_once_and_its_first_images_are_a_slice(tmp_path, small, monkeypatch):
    """Issue 26: `test-2000`, `test-4000` and `test-10000` were three files, drawn three times."""
    expected = drawn("valid", 10)
    real, calls = faces.render_uint8, []
    monkeypatch.setattr(faces, "render_uint8", lambda f, i: calls.append(len(i)) or real(f, i))
    first = FacesDataset("valid", cache_dir=tmp_path, limit=10)
    data = np.array(first.images_uint8())
    assert sum(calls) == 40  # the whole split, once
    [path] = first.cache_files()
    assert path.name.startswith(f"faces-r{faces.RENDER_VERSION}-valid-40-")
    assert path.stem.endswith(faces.digest(np.load(path))[:16])  # the name carries the pixels' checksum
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    assert np.array_equal(data, expected)
    for limit in (4, 25, None):
        again = FacesDataset("valid", cache_dir=tmp_path, limit=limit)
        assert isinstance(again.images_uint8(), np.memmap) and len(again.images_uint8()) == len(again)
        assert np.array_equal(again.images_uint8()[:4], data[:4])
    assert sum(calls) == 40 and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cache_files_respect_the_umask(tmp_path, small):
    old = os.umask(0o027)
    try:
        FacesDataset("test", cache_dir=tmp_path, limit=2).images_uint8()
    finally:
        os.umask(old)
    [path] = tmp_path.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape", "pixels"])
def test_damaged_cache_is_rendered_again(tmp_path, small, damage):
    d = FacesDataset("test", cache_dir=tmp_path, limit=6)
    good = np.array(d.images_uint8())
    [path] = d.cache_files()
    faces._VERIFIED.clear()  # a new process: nothing verified yet
    if damage == "garbage":
        path.write_bytes(b"not a numpy file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "wrong shape":
        np.save(path, np.zeros((40, 3, 32, 32), np.uint8))
    else:  # one pixel changed behind an intact header: only the checksum can tell
        arr = np.load(path, mmap_mode="r+")
        arr[2, 1, 30, 30] ^= 1
        arr.flush()
        del arr
    again = FacesDataset("test", cache_dir=tmp_path, limit=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(again.images_uint8(), good)
    [repaired] = again.cache_files()
    assert np.array_equal(np.load(repaired)[:6], good)


def test_pixel_damage_is_reported(tmp_path, small):
    d = FacesDataset("test", cache_dir=tmp_path, limit=3)
    d.images_uint8()
    [path] = d.cache_files()
    faces._VERIFIED.clear()
    arr = np.load(path, mmap_mode="r+")
    arr[39, 0, 0, 0] ^= 4  # in the split, after the dataset's three images
    arr.flush()
    del arr
    with pytest.warns(UserWarning, match="fails its checksum"):
        FacesDataset("test", cache_dir=tmp_path, limit=3).images_uint8()


def test_cache_dir_defaults_to_env(tmp_path, small, monkeypatch):
    monkeypatch.setenv("VAEBOOK_CACHE", str(tmp_path / "c"))
    d = FacesDataset("test", limit=2)
    d.images_uint8()
    assert [p.parent for p in d.cache_files()] == [tmp_path / "c"]


def test_dataloader_batches(tmp_path, small):
    d = FacesDataset("test", cache_dir=tmp_path, limit=40)
    loader = torch.utils.data.DataLoader(d, batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [16, 16, 8]
    x, a = batches[0]
    assert x.shape == (16, 3, IMAGE_SIZE, IMAGE_SIZE) and x.dtype == torch.float32
    assert a.shape == (16, len(ATTR_NAMES)) and a.dtype == torch.float32
    seen = torch.cat([x for x, _ in batches]).flatten(1).sum(1).sort().values
    assert torch.allclose(seen, torch.stack([d[i][0] for i in range(40)]).flatten(1).sum(1).sort().values)
    clone = pickle.loads(pickle.dumps(d))  # what worker processes receive
    assert clone._images is None and torch.equal(clone[7][0], d[7][0])
