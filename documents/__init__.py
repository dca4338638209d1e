"""Invoices as documents people read: plain text for the terminal (``text``) and a standalone
HTML file to send (``html``). The figures come from ``domain.invoice``; nothing here computes.
"""

from documents.html import invoice_html
from documents.text import invoice_text

__all__ = ["invoice_html", "invoice_text"]
