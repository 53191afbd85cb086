"""Evaluation of synthetic tables: quality, privacy, utility — pure functions of the tables and schema."""
