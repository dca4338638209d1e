-- Replay, snapshots, the gap-safe feed and the projections it feeds.

-- Every event carries the schema version of its payload; older shapes are upcast when read
-- (domain/upcasting.py). Events stored before this column existed are version 1.
ALTER TABLE account_events
    ADD COLUMN schema_version smallint NOT NULL DEFAULT 1 CHECK (schema_version >= 1);

-- Followers of the log read it in (transaction_id, position) order: see projections/feed.py.
CREATE INDEX account_events_feed ON account_events (transaction_id, position);

-- A snapshot of an account's state (the same JSON continue-as-new carries), written every K
-- events in the transaction of the append that crosses the boundary. One per account and state
-- schema version: a worker ignores snapshots of another schema, and so can run beside older ones.
CREATE TABLE account_snapshots (
    account_id           text NOT NULL,
    state_schema_version integer NOT NULL,
    version              bigint NOT NULL CHECK (version >= 1),
    state                jsonb NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, state_schema_version)
);

-- New events wake the followers of the log (LISTEN account_events), once per transaction.
CREATE FUNCTION notify_account_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('account_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER account_events_notify
    AFTER INSERT ON account_events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_account_events();

-- How far each projection has applied the feed, in the same transaction as its writes; and,
-- when its handler failed, where and why (it stops there; the others go on).
CREATE TABLE projection_checkpoints (
    name             text PRIMARY KEY,
    transaction_id   xid8 NOT NULL DEFAULT '0',
    position         bigint NOT NULL DEFAULT 0,
    events_applied   bigint NOT NULL DEFAULT 0,
    last_recorded_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    failed_position  bigint,
    failure          text,
    failed_at        timestamptz
);

-- Every money movement of an account, with the balance right after it.
CREATE TABLE account_statement (
    account_id    text NOT NULL,
    version       bigint NOT NULL,
    recorded_at   timestamptz NOT NULL,
    event_type    text NOT NULL,
    amount        bigint NOT NULL,
    balance_after bigint NOT NULL,
    description   text NOT NULL DEFAULT '',
    command_id    text,
    PRIMARY KEY (account_id, version)
);

-- Funds, charges and declines per UTC day and currency: counts and sums in minor units.
CREATE TABLE daily_totals (
    day             date NOT NULL,
    currency        char(3) NOT NULL,
    funds_count     bigint NOT NULL DEFAULT 0,
    funds_amount    numeric(30) NOT NULL DEFAULT 0,
    charges_count   bigint NOT NULL DEFAULT 0,
    charges_amount  numeric(30) NOT NULL DEFAULT 0,
    declines_count  bigint NOT NULL DEFAULT 0,
    declines_amount numeric(30) NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency)
);

-- The currency of each account, as the daily totals need it (learned from ACCOUNT_CREATED).
CREATE TABLE daily_totals_currencies (
    account_id text PRIMARY KEY,
    currency   char(3) NOT NULL
);

-- The progress of a full replay into shadow tables, committed with the rows it covers, so an
-- interrupted replay resumes exactly where it stopped (operations/replay).
CREATE TABLE replay_progress (
    projections     text PRIMARY KEY,  -- the names of the projections being rebuilt, sorted
    horizon         xid8 NOT NULL,     -- the scan covers the transactions older than this
    scanned_account text NOT NULL DEFAULT '',
    scanned_version bigint NOT NULL DEFAULT 0,
    feed_transaction_id xid8,          -- then the catch-up follows the feed from here
    feed_position   bigint,
    events_done     bigint NOT NULL DEFAULT 0,
    events_total    bigint NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The worker writes snapshots with its appends, and runs the projections.
GRANT SELECT, INSERT, UPDATE ON account_snapshots TO billing_writer;
GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO billing_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON account_statement, daily_totals, daily_totals_currencies
    TO billing_writer;
