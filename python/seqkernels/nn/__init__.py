"""Layers with explicit forward and backward over NumPy arrays."""

from .recurrent import GRU, LSTM, RNN

__all__ = ["LSTM", "GRU", "RNN"]
