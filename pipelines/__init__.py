"""custval: raw orders in, customer-value tables out."""

__version__ = "0.1.0"
