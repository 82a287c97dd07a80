"""The latent explorer that runs in the book's pages (vaebook.explore.webexport, web/explorer.js).

Without a browser: the layers the page runs reproduce the PyTorch decoder; bad input is refused.
In headless Chromium (skipped only when no Chromium is installed; .ci/run installs it): a page
built by the chapters' own call (explorer_html) next to the files the site build writes
(write_explorer, from the real checkpoints), opened from disk; a reader's clicks and slider moves
are replayed as DOM events, and the pixels the page draws must equal PyTorch's decode of the
same code within 2/255."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vaebook.store import checkpoints
from vaebook.explore import webexport as wx
from vaebook.explore.chromium import Chromium, find_chromium
from vaebook.data import load_dataset, stack_images
from vaebook.metrics import encode_means, kl_per_dim
from vaebook.models import ModelConfig, build_model

TOLERANCE = 2 / 255
BETAS = ("beta4", "beta16")


def tiny_vae(seed=0):
    model = build_model(ModelConfig("vae", latent_dim=6, channels=(8, 16, 32, 64)), seed=seed)
    with torch.no_grad():                 # BatchNorm statistics away from (0, 1), so folding matters
        for m in model.decoder:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


# ------------------------------------------------------------------------------ no browser
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-5), (np.float16, 1 / 255)])
def test_browser_layers_reproduce_the_decoder(dtype, atol):
    model = tiny_vae()
    z = torch.randn(16, 6, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        expected = model.decode(z)
        got = wx.run_layers(wx.browser_layers(model.decoder), z, dtype)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < atol


@pytest.mark.parametrize("k, s", [(4, 2), (3, 1), (6, 2), (5, 3), (2, 2), (8, 4)])
def test_subpixel_is_the_transposed_convolution(k, s):
    """The page's phase convolutions + depth-to-space give the 'same' transposed convolution,
    with as many weights (no zero taps); phases of unequal size (k = 5, s = 3) included."""
    conv = torch.nn.ConvTranspose2d(5, 3, k, s, (k - s) // 2)
    x = torch.randn(2, 5, 7, 6, generator=torch.Generator().manual_seed(k * 10 + s))
    layer = {"op": "conv_transpose", "stride": s, "act": "sigmoid",
             "w": conv.weight.detach().double().permute(2, 3, 1, 0).numpy(), "b": conv.bias.detach().double().numpy()}
    page = wx.subpixel(layer)
    assert page["op"] == "subpixel" and page["act"] == "sigmoid" and len(page["phases"]) == s * s
    assert sum(phase["w"].size for phase in page["phases"]) == layer["w"].size
    with torch.no_grad():
        expected = torch.sigmoid(conv(x))
    for stored in (layer, page):
        assert (wx.run_layers([stored], x, np.float64) - expected).abs().max() < 1e-6


def test_browser_layers_refuse_what_the_page_cannot_run():
    with pytest.raises(ValueError, match="cannot run a Dropout"):
        wx.browser_layers(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout()))
    odd = torch.nn.ConvTranspose2d(4, 3, kernel_size=3, stride=2, padding=0)
    with pytest.raises(ValueError, match="'same' transposed"):
        wx.browser_layers(torch.nn.Sequential(odd))


def test_explorer_html_names_exported_models_only():
    html = wx.explorer_html(["beta4", "beta16"], start="beta16").data
    config = json.loads(html.split('data-config="')[1].split('"')[0].replace("&quot;", '"'))
    assert [m["name"] for m in config["models"]] == ["beta4", "beta16"] and config["start"] == "beta16"
    assert config["models"][1]["label"] == "β = 16"
    assert "vaebook.explore.widgets" in html                                       # the note for Jupyter
    assert html.count("<script src=") == 1
    with pytest.raises(ValueError, match="exports"):
        wx.explorer_html("capacity")
    with pytest.raises(ValueError, match="start"):
        wx.explorer_html(["beta4"], start="beta16")


# ------------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "explorer" / "models").mkdir(parents=True)
    (site / "explorer" / "models" / "old.js").write_text("stale")
    wx.write_explorer(site, names=("vae", *BETAS))
    wx.standalone_page(site, "vae", "vae", sliders=12)
    wx.standalone_page(site, "beta", list(BETAS), start="beta4")
    return site


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium, or set VAEBOOK_CHROMIUM); "
                    ".ci/run installs it")
    with Chromium() as b:
        yield b


@pytest.fixture(scope="module")
def test_faces():
    return stack_images(load_dataset(None, "test", limit=wx.N_KL))


def open_explorer(browser, page):
    browser.events.clear()
    browser.open(page.as_uri())
    browser.evaluate("""(() => { const root = document.querySelector('.vaebook-explorer');
        root.scrollIntoView(); return root.vaebookExplorer.ready; })()""")


def state(browser):
    return browser.evaluate("""(() => { const x = document.querySelector('.vaebook-explorer').vaebookExplorer;
        return {model: x.model.name, dims: x.dims, face: x.face, z: Array.from(x.z)}; })()""")


def slide(browser, dim: int, value: float) -> float:
    """Move the slider of latent `dim` as a reader would; the value it took."""
    return browser.evaluate(f"""(() => {{
        const s = document.querySelector('.vaebook-explorer input[data-dim="{dim}"]');
        s.value = "{value}"; s.dispatchEvent(new Event("input", {{bubbles: true}}));
        return parseFloat(s.value); }})()""")


def click(browser, selector: str) -> None:
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def pixels(browser) -> np.ndarray:
    """The decoded image the page shows, (S, S, 3) in [0, 1], read back from its canvas."""
    data = browser.evaluate("""(() => { const c = document.querySelector('.vaebook-explorer canvas');
        return {side: c.width, rgba: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)}; })()""")
    return np.array(data["rgba"], dtype=np.float64).reshape(data["side"], data["side"], 4)[..., :3] / 255


def torch_pixels(model, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.decode(z[None].float())[0].permute(1, 2, 0).double().numpy()


def test_site_files(site):
    out = site / "explorer"
    assert sorted(p.name for p in (out / "models").glob("*.js")) == sorted(f"{n}.js" for n in ("vae", *BETAS))
    for rel in ("tf.js", "tf-wasm.js", "LICENSE-tfjs.txt", "README.md", "explorer.js", "explorer.css",
                "faces.js"):
        assert (out / rel).stat().st_size > 0
    spec = json.loads((out / "models" / "vae.js").read_text().split("register(", 1)[1].rsplit(");", 1)[0])
    assert spec["sha256"] == checkpoints.manifest_entry("vae")["sha256"]     # made from the current checkpoint


def test_vae_explorer_faces_and_sliders(browser, site, test_faces):
    vae = checkpoints.load("vae")
    open_explorer(browser, site / "chapters" / "vae.html")
    first = state(browser)
    kl = kl_per_dim(vae, test_faces).float()
    assert first["dims"] == torch.argsort(kl, descending=True)[:12].tolist()   # most informative first
    assert browser.evaluate("document.querySelectorAll('.vaebook-explorer .vx-face').length") == wx.N_FACES
    codes = encode_means(vae, test_faces[:wx.N_FACES])
    assert np.abs(pixels(browser) - torch_pixels(vae, codes[0])).max() <= TOLERANCE   # face 0 at the start

    click(browser, '.vx-face[data-face="5"]')                                  # encode a test face
    z = codes[5].clone()
    for d, v in zip(first["dims"][:3], (2.5, -1.75, 0.8)):
        z[d] = slide(browser, d, v)
    assert z[first["dims"][0]] == 2.5
    page = state(browser)
    assert page["face"] == 5
    np.testing.assert_allclose(page["z"], z.numpy(), atol=1e-6)
    assert np.abs(pixels(browser) - torch_pixels(vae, z)).max() <= TOLERANCE
    assert browser.errors() == []


def test_beta_explorer_switches_model(browser, site, test_faces):
    open_explorer(browser, site / "chapters" / "beta.html")
    assert state(browser)["model"] == "beta4"
    click(browser, '.vx-face[data-face="3"]')
    click(browser, '.vx-models input[value="beta16"]')                        # choose β = 16
    browser.evaluate("""new Promise(done => { const x = document.querySelector('.vaebook-explorer').vaebookExplorer;
        (function wait() { x.model.name === 'beta16' ? done() : setTimeout(wait, 20); })(); })""")
    checked = browser.evaluate("[...document.querySelectorAll('.vx-models input:checked')].map(i => i.value)")
    assert checked == ["beta16"]
    beta16 = checkpoints.load("beta16")
    page = state(browser)
    assert sorted(page["dims"]) == list(range(10))                              # one slider per latent
    z = encode_means(beta16, test_faces[3:4])[0].clone()                       # the same face, re-encoded
    z[page["dims"][-1]] = slide(browser, page["dims"][-1], -2.25)
    z[page["dims"][0]] = slide(browser, page["dims"][0], 1.5)
    assert np.abs(pixels(browser) - torch_pixels(beta16, z)).max() <= TOLERANCE
    click(browser, ".vx-sample")                                               # z ~ N(0, I)
    page = state(browser)
    assert page["face"] is None and np.std(page["z"]) > 0.1
    assert np.abs(pixels(browser) - torch_pixels(beta16, torch.tensor(page["z"]))).max() <= TOLERANCE
    assert browser.errors() == []


def backend(browser) -> str:
    return browser.evaluate("document.querySelector('.vaebook-explorer').vaebookExplorer.backend")


@pytest.mark.parametrize("query, expected", [("", "wasm"), ("?backend=cpu", "cpu")])
def test_both_backends_decode_like_pytorch(browser, site, test_faces, query, expected):
    """The page picks the WebAssembly backend; the CPU backend (its fallback) decodes alike."""
    vae = checkpoints.load("vae")
    browser.events.clear()
    browser.open((site / "chapters" / "vae.html").as_uri() + query)
    browser.evaluate("""(() => { const root = document.querySelector('.vaebook-explorer');
        root.scrollIntoView(); return root.vaebookExplorer.ready; })()""")
    assert backend(browser) == expected
    z = encode_means(vae, test_faces[:1])[0].clone()
    d = state(browser)["dims"][0]
    z[d] = slide(browser, d, -1.5)
    assert np.abs(pixels(browser) - torch_pixels(vae, z)).max() <= TOLERANCE
    assert browser.errors() == []


def test_without_webassembly_the_cpu_backend_decodes(browser, site):
    page = site / "chapters" / "nowasm.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><script>delete window.WebAssembly;"
                    f"</script></head><body>{wx.explorer_html('beta4').data}</body></html>")
    open_explorer(browser, page)
    assert backend(browser) == "cpu" and state(browser)["model"] == "beta4"


def test_the_panel_fits_a_phone_screen(browser, site):
    """On a 412-px-wide screen nothing runs past the edge; the decoded image stays square."""
    page = site / "chapters" / "phone.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
                    "content='width=device-width, initial-scale=1'></head><body style='margin: 16px'>"
                    f"{wx.explorer_html('vae', sliders=12).data}</body></html>")
    browser.send("Emulation.setDeviceMetricsOverride", session=True, width=412, height=915,
                 deviceScaleFactor=1, mobile=True)
    try:
        open_explorer(browser, page)
        box = browser.evaluate("""(() => { const r = e => document.querySelector(e).getBoundingClientRect();
            const c = r('.vaebook-explorer canvas');
            return {page: document.documentElement.scrollWidth, panel: r('.vaebook-explorer .vx-body').right,
                    right: c.right, width: c.width, height: c.height}; })()""")
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride", session=True)
    assert box["page"] <= 412 and box["panel"] <= 412 and box["right"] <= 412, box
    assert box["width"] == box["height"] >= 120, box


def test_an_amd_loader_on_the_page_changes_nothing(browser, site):
    """Pages with require.js (Quarto adds it for some outputs) must still get a global `tf`."""
    page = site / "chapters" / "amd.html"
    amd = "<script>function define() { throw new Error('AMD define called'); } define.amd = {};</script>"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{amd}</head><body>"
                    f"{wx.explorer_html('beta4').data}</body></html>")
    open_explorer(browser, page)
    assert state(browser)["model"] == "beta4" and browser.errors() == []


def test_nothing_heavy_loads_before_the_reader_scrolls_there(browser, site):
    page = site / "chapters" / "far.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>"
                    f"<div style='height: 5000px'></div>{wx.explorer_html('beta4').data}</body></html>")
    browser.events.clear()
    browser.open(page.as_uri())
    loaded = "[typeof tf, document.querySelectorAll('script[src*=\"models/\"]').length]"
    assert browser.evaluate(loaded) == ["undefined", 0]
    open_explorer(browser, page)
    assert browser.evaluate(loaded) == ["object", 1] and state(browser)["model"] == "beta4"


def test_without_site_files_the_note_stays(browser, tmp_path):
    page = wx.standalone_page(tmp_path, "bare", "vae")                          # no explorer/ next to it
    browser.open(page.as_uri())
    note = browser.evaluate("document.querySelector('.vaebook-explorer-note').textContent")
    assert "vaebook.explore.widgets" in note
