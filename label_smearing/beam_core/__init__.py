"""Beam plumbing: pipeline options and runners, dataset sources, TFRecord bytes. No Beam job imports another."""
