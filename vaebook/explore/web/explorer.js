/* The book's latent explorer: a trained VAE decoder running in the reader's browser.
 *
 * Placed in a page by vaebook.explore.webexport.explorer_html: a <div class="vaebook-explorer"
 * data-config="{models: [{name, label}], start, sliders}"> and a <script src> tag for this file.
 * The rest (tf.js: TensorFlow.js core + CPU backend; tf-wasm.js: its WebAssembly backend;
 * faces.js; models/NAME.js) is loaded when the explorer comes near the viewport, so a reader who
 * never scrolls to it downloads only this file. Everything loads with <script> tags, never fetch(), so the page also works from disk.
 *
 * UI: the decoding of the current code z (drawn at the model's resolution into a canvas, shown
 * enlarged), the test face it came from, a row of test faces (click one: z = its posterior
 * mean), "z ~ N(0, I)" (a draw from the prior), a chooser when there are several models (the
 * β sweep: the same face, re-encoded by the chosen model), and one slider per latent dim shown,
 * largest KL first. Dims without a slider keep their value. Sliders span ±3 (the prior's ±3σ);
 * a code beyond that is kept exact, its slider stops at the end.
 *
 * For tests and benchmarks the container carries its explorer as `.vaebookExplorer`: `ready`
 * (a promise, resolved once it is on screen and has drawn), `model` (its spec), `z` (Float32Array), `dims`, `face`, `times` (ms per decode),
 * `readyMs` (when the first image was drawn, ms after the page started loading), `backend`
 * ("wasm" or "cpu"). The page's URL may ask for one with `?backend=cpu` (or wasm): the benchmark
 * times both.
 */
(function () {
  "use strict";
  if (window.VaebookExplorer) { window.VaebookExplorer.mountAll(); return; }
  const BASE = document.currentScript.src.replace(/[^/]*$/, "");
  const specs = {}, loading = {};
  let faces = null;

  // ---------------------------------------------------------------------------- loading
  function script(src) {
    return new Promise((resolve, reject) => {
      const el = document.createElement("script");
      el.src = src;
      el.onload = resolve;
      el.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(el);
    });
  }

  function bytes(b64) {
    const text = atob(b64), out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return new DataView(out.buffer);
  }

  function float32(b64) {                       // little-endian float32, as webexport.b64 writes
    const view = bytes(b64), out = new Float32Array(view.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }

  function float16(b64) {                       // little-endian IEEE half -> float32, exactly
    const view = bytes(b64), out = new Float32Array(view.byteLength / 2);
    for (let i = 0; i < out.length; i++) {
      const h = view.getUint16(2 * i, true), sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
      out[i] = exp === 0 ? sign * frac * 2 ** -24
        : exp === 31 ? (frac ? NaN : sign * Infinity)
          : sign * (1 + frac / 1024) * 2 ** (exp - 15);
    }
    return out;
  }

  function register(spec) {                     // called by models/NAME.js
    spec.codes = float32(spec.codes);
    const weights = l => tf.tensor(float16(l.w), l.shape);
    spec.layers = spec.layers.map(l => Object.assign({}, l, {
      w: l.w && weights(l), b: tf.tensor1d(float32(l.b)),
      phases: l.phases && l.phases.map(p => ({w: weights(p), pad: [[0, 0], p.pad.slice(0, 2), p.pad.slice(2), [0, 0]]}))
    }));
    specs[spec.name] = spec;
  }

  function model(name) {
    if (!loading[name]) {
      loading[name] = script(BASE + "models/" + encodeURIComponent(name) + ".js").then(() => {
        if (!specs[name]) throw new Error("models/" + name + ".js did not register a model");
        return specs[name];
      });
    }
    return loading[name];
  }

  let library = null;
  function loadLibrary() {
    library = library || (window.tf && window.tf.conv2dTranspose ? Promise.resolve() : script(BASE + "tf.js"));
    return library;
  }

  /* TensorFlow.js's WebAssembly backend, SIMD, one thread (threads need a cross-origin-isolated
   * page, which a static host or a file:// page is not); the CPU backend when that fails. The
   * backend would fetch() its .wasm, which file:// pages may not: tf-wasm.js carries the bytes
   * in base64 and the platform's fetch is answered with them. */
  const WASM_SIMD = "tfjs-backend-wasm-simd.wasm";
  let backend = null;
  function pickBackend() {
    backend = backend || (async () => {
      const wanted = new URLSearchParams(location.search).get("backend");
      if (wanted !== "cpu") {
        try {
          await script(BASE + "tf-wasm.js");
          tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
          if (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) {
            const binary = bytes(globalThis.vaebookWasmSimd).buffer, platform = tf.env().platform;
            const fetch = platform.fetch.bind(platform);
            platform.fetch = (path, init) => path === "vaebook:" + WASM_SIMD
              ? Promise.resolve(new Response(binary, {headers: {"Content-Type": "application/wasm"}}))
              : fetch(path, init);
            tf.wasm.setWasmPaths(Object.fromEntries(["tfjs-backend-wasm.wasm", WASM_SIMD,
              "tfjs-backend-wasm-threaded-simd.wasm"].map(n => [n, "vaebook:" + n])), true);
            if (await tf.setBackend("wasm")) return "wasm";
          }
        } catch (error) {
          console.warn("vaebook explorer: WebAssembly backend unavailable, using the CPU backend", error);
        }
      }
      await tf.setBackend("cpu");
      return "cpu";
    })();
    return backend;
  }

  let facesLoaded = null;
  function loadFaces() {
    facesLoaded = facesLoaded || script(BASE + "faces.js").then(() => faces);
    return facesLoaded;
  }

  // ----------------------------------------------------------------------------- decoding
  /* z (Float32Array, L) -> pixels (Float32Array, S·S·3, channels last, in [0, 1]). */
  function decode(spec, z) {
    const out = tf.tidy(() => {
      let h = tf.tensor2d(z, [1, z.length]);
      for (const l of spec.layers) {
        if (l.op === "linear") {
          h = tf.reshape(tf.add(tf.matMul(h, l.w), l.b), [1].concat(l.out));
        } else {                                // "subpixel": a transposed convolution, see webexport.subpixel
          const phases = l.phases.map(p => tf.conv2d(h, p.w, 1, p.pad));
          h = tf.depthToSpace(tf.add(tf.concat(phases, 3), l.b), l.stride);
        }
        if (l.act === "leaky_relu") h = tf.leakyRelu(h, l.alpha);
        else if (l.act === "sigmoid") h = tf.sigmoid(h);
      }
      return h;
    });
    const pixels = out.dataSync();
    out.dispose();
    return pixels;
  }

  function gaussian() {                         // Box–Muller
    const u = 1 - Math.random(), v = Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    });
    (children || []).forEach(c => node.appendChild(c));
    return node;
  }

  // ----------------------------------------------------------------------------- the widget
  class Explorer {
    constructor(root) {
      this.root = root;
      this.config = JSON.parse(root.dataset.config);
      this.times = [];
      this.face = 0;
      root.vaebookExplorer = this;
      this.build();
      this.ready = new Promise(resolve => this.whenVisible(resolve)).then(() => this.start()).catch(err => {
        this.status.textContent = "The explorer could not start: " + err.message;
        throw err;
      });
    }

    whenVisible(go) {                           // load the decoder once the reader gets close
      if (!("IntersectionObserver" in window)) return go();
      const seen = new IntersectionObserver(entries => {
        if (entries.some(e => e.isIntersecting)) { seen.disconnect(); go(); }
      }, {rootMargin: "400px"});
      seen.observe(this.root);
    }

    build() {
      const names = this.config.models;
      this.canvas = el("canvas", {class: "vx-image", "aria-label": "decoded z"});
      this.original = el("img", {class: "vx-image vx-empty", alt: "test face"});   // hidden until a face is chosen
      this.caption = el("div", {class: "vx-caption"});
      this.status = el("div", {class: "vx-status", text: "The decoder loads when you scroll here."});
      this.thumbs = el("div", {class: "vx-faces"});
      this.sample = el("button", {type: "button", class: "vx-sample", text: "z ~ N(0, I)",
        title: "draw every latent dim from the prior"});
      this.sample.addEventListener("click", () => this.drawPrior());
      this.chooser = el("div", {class: "vx-models", role: "radiogroup"});
      if (names.length > 1) {
        const group = "vx-model-" + Math.random().toString(36).slice(2);   // one group per explorer
        names.forEach(m => {
          const input = el("input", {type: "radio", name: group, value: m.name});
          input.checked = m.name === this.config.start;
          input.addEventListener("change", () => this.setModel(m.name));
          this.chooser.appendChild(el("label", {}, [input, document.createTextNode(m.label)]));
        });
      }
      this.sliders = el("div", {class: "vx-sliders"});
      const pictures = el("div", {class: "vx-pictures"}, [
        el("figure", {}, [this.original, el("figcaption", {text: "test face"})]),
        el("figure", {}, [this.canvas, el("figcaption", {text: "decoded z"})])]);
      const left = el("div", {class: "vx-left"}, [pictures, this.caption, this.thumbs, this.sample, this.status]);
      const right = el("div", {class: "vx-right"}, [this.sliders]);
      this.root.replaceChildren(el("div", {class: "vx-body"}, names.length > 1 ? [this.chooser, left, right] : [left, right]));
    }

    async start() {
      this.status.textContent = "loading the decoder…";
      await loadLibrary();
      this.backend = await pickBackend();
      await loadFaces();
      faces.png.forEach((uri, i) => {
        const button = el("button", {type: "button", class: "vx-face", title: "test face #" + faces.indices[i],
          "data-face": String(i)}, [el("img", {src: uri, alt: "test face #" + faces.indices[i]})]);
        button.addEventListener("click", () => this.setFace(i));
        this.thumbs.appendChild(button);
      });
      await this.setModel(this.config.start);
      this.readyMs = performance.now();         // since the page started loading
    }

    async setModel(name) {
      this.status.textContent = "loading " + name + "…";
      const spec = await model(name);
      const first = this.model === undefined;
      this.model = spec;
      const order = spec.kl.map((kl, d) => [kl, d]).sort((a, b) => b[0] - a[0]).map(p => p[1]);
      this.dims = order.slice(0, this.config.sliders || spec.latent_dim);
      this.buildSliders();
      if (this.face !== null) this.setFace(this.face);
      else { if (first || this.z.length !== spec.latent_dim) this.z = new Float32Array(spec.latent_dim); this.redraw(); }
    }

    buildSliders() {
      const spec = this.model;
      this.inputs = this.dims.map(d => {
        const input = el("input", {type: "range", min: "-3", max: "3", step: "0.01", "data-dim": String(d),
          "aria-label": "z" + d});
        const value = el("span", {class: "vx-value"});
        input.addEventListener("input", () => {
          this.z[d] = parseFloat(input.value);
          value.textContent = this.z[d].toFixed(2);
          this.redraw();
        });
        input.readout = value;
        return input;
      });
      const rows = this.inputs.map((input, i) => el("label", {class: "vx-slider"}, [
        el("span", {class: "vx-dim", text: "z" + this.dims[i]}),
        el("span", {class: "vx-kl", text: spec.kl[this.dims[i]].toFixed(2)}), input, input.readout]));
      const shown = this.dims.length < spec.latent_dim
        ? this.dims.length + " of " + spec.latent_dim + " dims" : "all " + spec.latent_dim + " dims";
      const head = el("div", {class: "vx-head", text: shown + ", largest KL first (nats per dim, mean over "
        + spec.kl_faces + " test faces)"});
      this.sliders.replaceChildren(head, ...rows);
    }

    syncSliders() {
      this.inputs.forEach((input, i) => {
        const v = this.z[this.dims[i]];
        input.value = String(Math.max(-3, Math.min(3, v)));
        input.readout.textContent = v.toFixed(2);
      });
    }

    setFace(i) {
      const L = this.model.latent_dim;
      this.face = i;
      this.z = this.model.codes.slice(i * L, (i + 1) * L);
      this.original.src = faces.png[i];
      this.original.classList.remove("vx-empty");
      this.thumbs.querySelectorAll(".vx-face").forEach(b => b.classList.toggle("vx-selected", +b.dataset.face === i));
      this.caption.textContent = "test face #" + faces.indices[i] + ": its posterior mean, decoded by "
        + this.model.label;
      this.syncSliders();
      this.redraw();
    }

    drawPrior() {
      this.face = null;
      this.z = Float32Array.from({length: this.model.latent_dim}, gaussian);
      this.original.removeAttribute("src");
      this.original.classList.add("vx-empty");
      this.thumbs.querySelectorAll(".vx-face").forEach(b => b.classList.remove("vx-selected"));
      this.caption.textContent = "z drawn from the prior N(0, I), decoded by " + this.model.label;
      this.syncSliders();
      this.redraw();
    }

    redraw() {
      const spec = this.model, S = spec.image_size;
      const t0 = performance.now();
      const pixels = decode(spec, this.z);
      const ms = performance.now() - t0;
      this.times.push(ms);
      if (this.canvas.width !== S) this.canvas.width = this.canvas.height = S;
      const ctx = this.canvas.getContext("2d", {willReadFrequently: true});
      const image = ctx.createImageData(S, S);
      for (let p = 0; p < S * S; p++) {
        for (let c = 0; c < 3; c++) image.data[4 * p + c] = Math.round(pixels[3 * p + c] * 255);
        image.data[4 * p + 3] = 255;
      }
      ctx.putImageData(image, 0, 0);
      this.status.textContent = "decoded in your browser in " + ms.toFixed(0) + " ms (TensorFlow.js, CPU)";
    }
  }

  // -------------------------------------------------------------------------------- mount
  function mountAll() {
    document.querySelectorAll(".vaebook-explorer").forEach(root => {
      if (!root.vaebookExplorer) new Explorer(root);
    });
  }

  window.VaebookExplorer = {register, faces: spec => { faces = spec; }, mountAll, decode, model};
  const css = el("link", {rel: "stylesheet", href: BASE + "explorer.css"});
  document.head.appendChild(css);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
