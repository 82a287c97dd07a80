"""The latent explorer of the rendered book: trained decoders exported to run in the reader's
browser, offline, with no server, also from a page opened from disk (file://).

Two parts:

- :func:`write_explorer` (run by ``tools/site_assets.py`` after every build of the site) writes
  ``<site>/explorer/``: the inference library, ``explorer.js``/``.css`` (the page's UI), one
  ``models/NAME.js`` per checkpoint in :data:`EXPORTED` made from the current checkpoint (so a
  page never shows a model that no longer exists), and ``faces.js`` (thumbnails of the first
  :data:`N_FACES` test faces).
- :func:`explorer_html` (called by a chapter cell) places an explorer in the page: a container
  and a ``<script src>`` tag for explorer.js, which loads the library, faces and decoder only
  when the explorer comes near the viewport. Without the site's files next to the page (a notebook in
  Jupyter) the container keeps a note that points to the kernel widgets, :mod:`vaebook.explore.widgets`.

**Library.** TensorFlow.js core + its CPU backend (npm ``@tensorflow/tfjs-core``,
``@tensorflow/tfjs-backend-cpu`` 4.22.0; Apache 2.0; vendored in ``vaebook/explore/web/vendor/``):
381 kB of plain JavaScript in ``tf.js``, loaded with ``<script src>``; and its WebAssembly backend
(``@tensorflow/tfjs-backend-wasm`` 4.22.0, the SIMD single-thread binary, so it needs no
cross-origin isolation and runs on any static host) in ``tf-wasm.js``: the backend's script and
the 424 kB ``.wasm`` in base64, again a ``<script>``. TensorFlow.js would fetch() the ``.wasm``,
and Chromium refuses fetch() of file:// URLs, so explorer.js hands it the embedded bytes instead
(see :func:`wasm_bundle`). explorer.js uses the WebAssembly backend when it initialises and falls
back to the CPU backend otherwise (no SIMD, or a failed start). ONNX Runtime Web 1.30 would need a
14 MB ``.wasm``.

**Weights.** Each ``models/NAME.js`` calls ``VaebookExplorer.register({...})`` with the weights
in base64, so it too loads with a ``<script>`` tag, never fetch(). Every BatchNorm is folded into
the transposed convolution before it (in float64), weights are stored as float16 (biases
float32). Against the PyTorch decode, over 1100 codes (prior draws, test posterior means, 3σ
draws; ``bench_export_precision`` in ``python -m vaebook.cli.bench`` prints it): float16 moves a
pixel by at most 0.25/255 (vae; beta4 0.16/255), int8 per output channel (of each layer's
matrix or phase convolution) by up to 12.0/255, with 4.0% of the pixels off by more than
1/255; so float16, visually lossless at half the float32 size.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from ..store.checkpoints import atomic_write_bytes, load, manifest_entry
from ..data.loading import load_dataset, stack_images
from ..metrics.measures import encode_means, kl_per_dim

WEB = Path(__file__).resolve().parent / "web"
LIBRARY = ("vendor/tf-core.es2017.min.js", "vendor/tf-backend-cpu.es2017.min.js")   # -> explorer/tf.js
WASM = ("vendor/tf-backend-wasm.es2017.min.js", "vendor/tfjs-backend-wasm-simd.wasm")  # -> explorer/tf-wasm.js
STATIC = ("vendor/LICENSE-tfjs.txt", "vendor/README.md", "explorer.js", "explorer.css")
SCRIPTS = ("explorer.js",)   # what a page loads with <script src>; it loads tf.js and the rest on demand
EXPORTED = ("vae", "beta1", "beta2", "beta4", "beta8", "beta16")  # the models the chapters show
N_FACES = 12      # embedded test faces (thumbnails and their posterior means)
N_KL = 1000       # test faces the KL per dim is measured on (to rank the sliders)
NOTE = ("The latent explorer runs in the book's web pages (<code>make book</code>). "
        "In Jupyter, the kernel widgets do the same: "
        "<code>from vaebook.explore.widgets import latent_explorer</code>.")


# ------------------------------------------------------------------------- decoder -> layers
def browser_layers(decoder: nn.Sequential) -> list[dict]:
    """The decoder as the layers the page runs, float64 numpy arrays in TensorFlow.js layouts:
    ``{"op": "linear", "w": (L, s·s·C), "b", "out": [s, s, C]}`` (outputs reordered from PyTorch's
    C, s, s to the browser's channels-last s, s, C) and, for each transposed convolution, the
    ``{"op": "subpixel", ...}`` of :func:`subpixel`; each with its activation (``act``,
    ``alpha``). A BatchNorm is folded into the layer before it: w·a and (b − mean)·a + β with
    a = γ/√(var + ε)."""
    layers = []
    for module in decoder:
        if isinstance(module, nn.Linear):
            layers.append({"op": "linear", "w": module.weight.detach().double().T.numpy(),
                           "b": module.bias.detach().double().numpy()})
        elif isinstance(module, nn.Unflatten):
            c, s1, s2 = module.unflattened_size
            last = layers[-1]
            order = np.arange(c * s1 * s2).reshape(c, s1, s2).transpose(1, 2, 0).ravel()
            last["w"], last["b"], last["out"] = last["w"][:, order], last["b"][order], [s1, s2, c]
        elif isinstance(module, nn.ConvTranspose2d):
            k, stride, pad = module.kernel_size[0], module.stride[0], module.padding[0]
            if (module.kernel_size != (k, k) or module.stride != (stride, stride) or module.padding != (pad, pad)
                    or k - stride != 2 * pad or module.output_padding != (0, 0) or module.groups != 1
                    or module.dilation != (1, 1)):
                raise ValueError(f"{module}: the page runs 'same' transposed convolutions only "
                                 "(square kernel, kernel − stride = 2·padding, no groups or dilation)")
            layers.append({"op": "conv_transpose", "stride": stride,
                           "w": module.weight.detach().double().permute(2, 3, 1, 0).numpy(),
                           "b": module.bias.detach().double().numpy()})
        elif isinstance(module, nn.BatchNorm2d):
            last = layers[-1]
            a = (module.weight.detach().double() / torch.sqrt(module.running_var.double() + module.eps)).numpy()
            last["w"] = last["w"] * a[:, None]                          # (k, k, C_out, C_in)
            last["b"] = (last["b"] - module.running_mean.double().numpy()) * a + module.bias.detach().double().numpy()
        elif isinstance(module, nn.LeakyReLU):
            layers[-1].update(act="leaky_relu", alpha=module.negative_slope)
        elif isinstance(module, nn.Sigmoid):
            layers[-1]["act"] = "sigmoid"
        else:
            raise ValueError(f"the page cannot run a {type(module).__name__} layer; "
                             "extend webexport.browser_layers and explorer.js together")
    return [subpixel(layer) if layer["op"] == "conv_transpose" else layer for layer in layers]


def subpixel(layer: dict) -> dict:
    """A 'same' transposed convolution (stride s, k×k kernel, padding p = (k − s)/2, weights
    w of shape (k, k, C_out, C_in) as TensorFlow.js lays them out) as s·s ordinary stride-1
    convolutions, one per output phase (r, c) = (row mod s, column mod s), whose outputs
    depth-to-space interleaves. Same numbers and the same multiplications, but TensorFlow.js's
    WebAssembly backend runs an ordinary convolution with its fast kernel (XNNPACK, SIMD) and a
    transposed one with a plain loop.

    Output row o = s·m + r takes input row m + d through kernel row t = r + p − s·d, for the d
    with 0 ≤ t < k; phase r's kernel holds those rows, its padding reaches from d_min to d_max.
    Returns ``{"op": "subpixel", "stride": s, "phases": [{"w": (rows, cols, C_in, C_out),
    "pad": [top, bottom, left, right]}, ...] (r, c in row-major order), "b": b tiled s·s times}``."""
    w, s = layer["w"], layer["stride"]
    k, p = w.shape[0], (w.shape[0] - s) // 2
    offsets = [[d for d in range(-k, k + 1) if 0 <= r + p - s * d < k] for r in range(s)]
    phases = []
    for r in range(s):
        for c in range(s):
            rows, cols = offsets[r], offsets[c]
            kernel = np.stack([np.stack([w[r + p - s * dr, c + p - s * dc].T for dc in cols]) for dr in rows])
            phases.append({"w": kernel, "pad": [-rows[0], rows[-1], -cols[0], cols[-1]]})
    keep = {key: value for key, value in layer.items() if key not in ("op", "w", "b")}
    return {**keep, "op": "subpixel", "phases": phases, "b": np.tile(layer["b"], s * s)}


def run_layers(layers: list[dict], z: torch.Tensor, dtype=np.float16) -> torch.Tensor:
    """What the page computes, in PyTorch: codes (B, L) -> images (B, 3, S, S), weights rounded
    to `dtype` as stored. Used to measure the storage dtype and to test the export."""
    h = z.float()
    for layer in layers:
        def weights(w):
            return torch.from_numpy(w.astype(dtype).astype(np.float32))
        b = torch.from_numpy(layer["b"].astype(np.float32))
        if layer["op"] == "linear":
            h = (h @ weights(layer["w"]) + b).reshape(-1, *layer["out"]).permute(0, 3, 1, 2)
        elif layer["op"] == "subpixel":          # phases' convolutions, then depth-to-space
            h = torch.cat([F.conv2d(F.pad(h, (left, right, top, bottom)), weights(phase["w"]).permute(3, 2, 0, 1))
                           for phase in layer["phases"] for top, bottom, left, right in [phase["pad"]]], 1) \
                + b[:, None, None]
            n, _, rows, cols = h.shape
            s = layer["stride"]
            h = h.reshape(n, s, s, -1, rows, cols).permute(0, 3, 4, 1, 5, 2).reshape(n, -1, rows * s, cols * s)
        else:                                     # conv_transpose: (k, k, C_out, C_in)
            w, s = weights(layer["w"]), layer["stride"]
            h = F.conv_transpose2d(h, w.permute(3, 2, 0, 1), b, stride=s, padding=(w.shape[0] - s) // 2)
        act = layer.get("act")
        h = F.leaky_relu(h, layer["alpha"]) if act == "leaky_relu" else torch.sigmoid(h) if act == "sigmoid" else h
    return h


# ----------------------------------------------------------------------------- page data
def b64(array, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def png_uri(img: torch.Tensor) -> str:
    """(3, S, S) in [0, 1] -> a data: URI of its PNG."""
    arr = img.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def model_label(name: str, root=None) -> str:
    """What the page calls a model: "β = 4" for a β sweep member, else its name."""
    train = manifest_entry(name, root).get("train", {})
    beta = train.get("beta", 1.0)
    return f"β = {beta:g}" if name.startswith("beta") else name


def export_key(name: str, faces: torch.Tensor, kl_images: torch.Tensor, root=None) -> str:
    """What a model's file is made from: its checkpoint (sha256), the test images and this
    module; an existing file with the same key is up to date and is kept as it is."""
    digest = hashlib.sha256(manifest_entry(name, root)["sha256"].encode())
    for part in (faces.numpy().tobytes(), kl_images.numpy().tobytes(), Path(__file__).read_bytes()):
        digest.update(part)
    return digest.hexdigest()[:20]


def model_spec(name: str, model, faces: torch.Tensor, kl_images: torch.Tensor, root=None) -> dict:
    """Everything the page needs about one model, JSON-ready."""
    kl = kl_per_dim(model, kl_images).float()
    layers = [page_layer(layer) for layer in browser_layers(model.decoder)]
    return {"name": name, "label": model_label(name, root), "latent_dim": model.config.latent_dim,
            "image_size": model.config.image_size, "sha256": manifest_entry(name, root)["sha256"],
            "key": export_key(name, faces, kl_images, root),
            "kl": [round(float(v), 4) for v in kl], "kl_faces": len(kl_images),
            "codes": b64(encode_means(model, faces).numpy(), "f4"), "layers": layers}


def page_layer(layer: dict) -> dict:
    """One layer as models/NAME.js stores it: weights as float16 base64 with their shape."""
    def weights(w):
        return {"shape": list(w.shape), "w": b64(w, "f2")}
    out = {key: layer[key] for key in ("op", "out", "stride", "act", "alpha") if key in layer}
    if "w" in layer:
        out.update(weights(layer["w"]))
    if "phases" in layer:
        out["phases"] = [{**weights(phase["w"]), "pad": phase["pad"]} for phase in layer["phases"]]
    return {**out, "b": b64(layer["b"], "f4")}


def library_bundle() -> bytes:
    """The vendored files, unchanged, in one script whose `define`, `module`, `exports` and
    `require` are undefined: their UMD headers then always attach to the global ``tf``, even on a
    page where require.js is loaded (which would otherwise take them as anonymous AMD modules).
    Loading it a second time (two explorers on a page) does nothing."""
    parts = [(WEB / rel).read_text() for rel in LIBRARY]
    return ("/* TensorFlow.js core + CPU backend, see README.md and LICENSE-tfjs.txt; bundled by "
            "vaebook.explore.webexport */\n(function (define, module, exports, require) {\n"
            "if (globalThis.tf && globalThis.tf.conv2dTranspose) return;\n"
            + "\n".join(parts) + "\n}).call(globalThis);\n").encode()


def wasm_bundle() -> bytes:
    """The WebAssembly backend's script (unchanged, wrapped as in :func:`library_bundle`) and its
    SIMD binary as base64 in ``globalThis.vaebookWasmSimd``, for explorer.js to hand to the backend
    in place of a fetch() (which file:// pages cannot do)."""
    script, binary = (WEB / WASM[0]).read_text(), (WEB / WASM[1]).read_bytes()
    return ("/* TensorFlow.js WebAssembly backend (SIMD, single thread) and its binary, see README.md "
            "and LICENSE-tfjs.txt; bundled by vaebook.explore.webexport */\n"
            f'globalThis.vaebookWasmSimd = "{base64.b64encode(binary).decode()}";\n'
            "(function (define, module, exports, require) {\n"
            "if (globalThis.tf && globalThis.tf.wasm) return;\n"
            + script + "\n}).call(globalThis);\n").encode()


def js_call(function: str, spec: dict) -> bytes:
    return f"/* generated by vaebook.explore.webexport */\nVaebookExplorer.{function}({json.dumps(spec)});\n".encode()


def write_explorer(site, names=EXPORTED, *, n_faces: int = N_FACES, n_kl: int = N_KL, root=None) -> dict[str, int]:
    """Write ``<site>/explorer/`` (library, UI, faces.js, models/NAME.js from the current
    checkpoints) and return {path relative to the site: bytes}. Every file is written
    atomically; models/ keeps only the files of `names`."""
    out = Path(site) / "explorer"
    sizes = {}
    for rel in STATIC:
        target = out / Path(rel).name
        atomic_write_bytes(target, (WEB / rel).read_bytes())
        sizes[str(target.relative_to(site))] = target.stat().st_size
    atomic_write_bytes(out / "tf.js", library_bundle())
    sizes["explorer/tf.js"] = (out / "tf.js").stat().st_size
    atomic_write_bytes(out / "tf-wasm.js", wasm_bundle())
    sizes["explorer/tf-wasm.js"] = (out / "tf-wasm.js").stat().st_size
    test = load_dataset(None, "test", limit=max(n_faces, n_kl))
    images = stack_images(test)
    faces = images[:n_faces]
    files = {"faces.js": js_call("faces", {"split": "test", "indices": list(range(n_faces)),
                                           "png": [png_uri(x) for x in faces]})}
    for name in names:
        path = out / "models" / f"{name}.js"
        key = export_key(name, faces, images[:n_kl], root)
        if path.exists() and f'"key": "{key}"' in path.read_text(errors="replace")[:2000]:
            files[f"models/{name}.js"] = path.read_bytes()        # made from the same inputs
        else:
            files[f"models/{name}.js"] = js_call("register", model_spec(name, load(name, root=root), faces,
                                                                       images[:n_kl], root))
    stale = out / "models"
    if stale.is_dir():
        for path in stale.glob("*.js"):
            if f"models/{path.name}" not in files:
                path.unlink()
    for rel, data in files.items():
        atomic_write_bytes(out / rel, data)
        sizes[f"explorer/{rel}"] = len(data)
    return sizes


# ------------------------------------------------------------------------------- the page
def explorer_html(models, sliders: int | None = None, start: str | None = None, base: str = "../explorer/",
                  root=None):
    """An explorer for the page: ``models`` is one name or a list (a list gets a chooser, e.g. the
    β sweep); ``sliders`` the number of sliders (the dims with the largest KL first; default:
    one per latent dim); ``start`` the model shown first; ``base`` the explorer folder relative to
    the page (chapter pages sit in <site>/chapters/).

    Returns an IPython ``Markdown`` object holding raw HTML, on purpose: Quarto adds require.js
    and jQuery from a CDN to any page with a text/html output (for "JavaScript widgets"), and
    raw HTML inside Markdown reaches the page unchanged without that. JupyterLab renders the
    Markdown with its scripts removed, which leaves the note for Jupyter readers."""
    from IPython.display import Markdown
    names = [models] if isinstance(models, str) else list(models)
    unknown = [n for n in names if n not in EXPORTED]
    if not names or unknown:
        raise ValueError(f"explorer_html: {unknown or 'no models'}; the site exports {', '.join(EXPORTED)} "
                         "(webexport.EXPORTED)")
    start = start or names[0]
    if start not in names:
        raise ValueError(f"explorer_html: start={start!r} is not one of {names}")
    config = {"models": [{"name": n, "label": model_label(n, root)} for n in names], "start": start,
              "sliders": sliders}
    scripts = "".join(f'<script src="{html.escape(base + Path(rel).name)}"></script>'
                      for rel in SCRIPTS)
    return Markdown(f'<div class="vaebook-explorer" data-config="{html.escape(json.dumps(config))}">'
                    f'<p class="vaebook-explorer-note">{NOTE}</p></div>\n\n{scripts}\n')


def standalone_page(site, name: str, models, **kwargs) -> Path:
    """``<site>/chapters/NAME.html``: a bare page holding :func:`explorer_html` (`models`,
    `kwargs`) exactly as a chapter holds it, for the browser test and the benchmark."""
    page = Path(site) / "chapters" / f"{name}.html"
    body = explorer_html(models, **kwargs).data
    atomic_write_bytes(page, (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{name}</title>'
                              f'</head><body><h1>{name}</h1>{body}</body></html>\n').encode())
    return page
