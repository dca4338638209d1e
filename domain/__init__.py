"""The pure core of the billing service: the account model and money. No I/O lives here."""
