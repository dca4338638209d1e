-- The event log is the source of truth; `accounts` is its projection and can be rebuilt from it.
-- There is deliberately no foreign key between them: dropping or rebuilding the projection must
-- never touch the log.

CREATE TABLE accounts (
    account_id      text PRIMARY KEY CHECK (account_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance         bigint NOT NULL DEFAULT 0,
    version         bigint NOT NULL CHECK (version >= 1),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    overdraft_limit bigint NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT balance_within_overdraft CHECK (balance >= -overdraft_limit)
);

CREATE TABLE account_events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    account_id     text NOT NULL,
    version        bigint NOT NULL CHECK (version >= 1),
    event_type     text NOT NULL CHECK (event_type IN (
                       'ACCOUNT_CREATED', 'FUND_ADDED', 'CHARGE_APPLIED', 'CHARGE_DECLINED',
                       'COMMAND_REJECTED', 'ACCOUNT_CLOSED')),
    payload        jsonb NOT NULL,
    command_id     text CHECK (length(command_id) BETWEEN 1 AND 128),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- Positions are allocated before commit, so they can become visible out of order. Readers
    -- that follow the log (projections) use the writing transaction's id to know how far they
    -- can safely read: nothing below pg_snapshot_xmin(pg_current_snapshot()) is still in flight.
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT one_event_per_version UNIQUE (account_id, version),
    CONSTRAINT one_event_per_command UNIQUE (account_id, command_id)
);

CREATE FUNCTION refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER account_events_append_only
    BEFORE UPDATE OR DELETE ON account_events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_change();

CREATE TRIGGER account_events_no_truncate
    BEFORE TRUNCATE ON account_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change();
