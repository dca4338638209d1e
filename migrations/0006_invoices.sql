-- Invoices: the new events, gapless document numbers, and the invoices projection.

ALTER TABLE account_events DROP CONSTRAINT account_events_event_type_check;
ALTER TABLE account_events ADD CONSTRAINT account_events_event_type_check CHECK (event_type IN (
    'ACCOUNT_CREATED', 'FUND_ADDED', 'CHARGE_APPLIED', 'CHARGE_DECLINED', 'COMMAND_REJECTED',
    'ACCOUNT_CLOSED', 'REFUND_APPLIED', 'INVOICE_DRAFTED', 'INVOICE_FINALIZED',
    'CREDIT_NOTE_ISSUED'));

-- Gapless numbering: one counter per series (a prefix and a year, e.g. INV-2026), moved on in
-- the transaction that records which document took the number, so a number is never skipped
-- nor given twice. (account, kind, key) names the document: asking again gives the same number.
CREATE TABLE document_series (
    series text PRIMARY KEY,
    last   bigint NOT NULL DEFAULT 0
);

CREATE TABLE document_numbers (
    series     text NOT NULL REFERENCES document_series (series),
    number     bigint NOT NULL,
    account_id text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    key        text NOT NULL,
    formatted  text NOT NULL UNIQUE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (series, number),
    UNIQUE (account_id, kind, key)
);

-- The invoices projection: one row per invoice (exactly one per account and period), its
-- lines, and the credit notes issued against finalized invoices.
CREATE TABLE invoices (
    account_id      text NOT NULL,
    sequence        integer NOT NULL,
    number          text UNIQUE,
    status          text NOT NULL CHECK (status IN ('drafted', 'finalized')),
    currency        char(3) NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    first_version   bigint NOT NULL,
    last_version    bigint NOT NULL,
    opening_balance bigint NOT NULL,
    funds_received  bigint NOT NULL,
    charges_total   bigint NOT NULL,
    refunds_total   bigint NOT NULL,
    declined_count  integer NOT NULL,
    closing_balance bigint NOT NULL,
    amount_due      bigint NOT NULL,
    document        jsonb NOT NULL,
    drafted_at      timestamptz NOT NULL,
    finalized_at    timestamptz,
    PRIMARY KEY (account_id, sequence)
);

CREATE TABLE invoice_lines (
    account_id  text NOT NULL,
    sequence    integer NOT NULL,
    line        integer NOT NULL,
    kind        text NOT NULL,
    version     bigint NOT NULL,
    recorded_at timestamptz NOT NULL,
    description text NOT NULL,
    amount      bigint NOT NULL,
    PRIMARY KEY (account_id, sequence, line)
);

CREATE TABLE credit_notes (
    number           text PRIMARY KEY,
    account_id       text NOT NULL,
    invoice_number   text NOT NULL,
    invoice_sequence integer NOT NULL,
    amount           bigint NOT NULL,
    refund_id        text NOT NULL,
    version          bigint NOT NULL,
    issued_at        timestamptz NOT NULL,
    UNIQUE (account_id, refund_id)
);

GRANT SELECT, INSERT, UPDATE ON document_series, document_numbers TO billing_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices, invoice_lines, credit_notes TO billing_writer;
