"""The book's stored figures, one module per chapter that quotes them: ``sampling`` (chapter 2),
``vae`` (chapter 5), ``beta`` (chapter 6). Importing this package registers them all with
:mod:`vaebook.metrics.stored`; a chapter reads one with ``stored.figure("name")``, and
``python -m vaebook figures --update`` recomputes them."""
from .sampling import (  # noqa: F401
    lilliefors_threshold, ch2_faces, ch2_features, damaged_faces, fd_blind_spots,
    fd_difference_bootstrap, fitted_densities_bootstrap)
from .vae import (  # noqa: F401
    ch5_test_faces, ch5_prior_draws, ch5_ex_post_samples, ch5_load, fd_samplers,
    fd_midpoints, fd_vae_long, iw_beta, ch5_sigma_scores, sigma_compare)
from .beta import (  # noqa: F401
    beta_rate_distortion, beta_rate_distortion_sweep, beta16_idle_mi,
    beta_total_correlation, aggregate_std_range, beta_q_spread)
