"""Will it fit: an analytic estimate of a case's peak memory before it runs, and its calibration."""
