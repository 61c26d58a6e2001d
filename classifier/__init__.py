"""Chinese rumor and pseudoscience classification."""
