-- Invoices as documents (projections/invoices.py): what a line needs beyond 0006's columns, and
-- the invariants of a row that the projection writes.

-- A line is a charge (positive) or a refund (negative, naming its charge and, when that charge
-- was on a finalized invoice, the credit note that corrects it).
ALTER TABLE invoice_lines
    ADD COLUMN command_id     text NOT NULL,
    ADD COLUMN charge_id      text,
    ADD COLUMN charge_version bigint,
    ADD COLUMN credit_note    text,
    ADD CONSTRAINT invoice_lines_kind_check CHECK (
        (kind = 'charge' AND amount > 0 AND charge_id IS NULL)
        OR (kind = 'refund' AND amount < 0 AND charge_id IS NOT NULL));

-- The balance settled as the account closed (BALANCE_PAID_OUT: positive when paid out to the
-- customer, negative when collected), in the last period only. A number exactly when final; the
-- amount due follows from the closing balance.
ALTER TABLE invoices
    ADD COLUMN paid_out bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT invoices_number_when_final CHECK ((status = 'finalized') = (number IS NOT NULL)),
    ADD CONSTRAINT invoices_amount_due CHECK (amount_due = greatest(0, -closing_balance)),
    ADD CONSTRAINT invoices_closing_balance CHECK (
        closing_balance = opening_balance + funds_received - charges_total - refunds_total - paid_out);

-- An invoice's notes, listed with it.
CREATE INDEX credit_notes_invoice ON credit_notes (account_id, invoice_sequence);
