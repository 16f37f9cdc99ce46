"""Training-side code for PixelNMF: synthetic data generation and model fitting (not shipped to the server)."""
