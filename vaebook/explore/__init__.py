"""Looking inside a latent space: latent arithmetic (``latents``: traversals, slerp, attribute
vectors), the Jupyter explorer (``widgets`` with ``widget_parts``, ``widgets_compare``), the
in-page explorer of the rendered book (``webexport`` and its ``web/`` assets) and the headless
browser that tests it (``chromium``). Importing this folder does not import ipywidgets."""
