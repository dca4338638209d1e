-- The worker's queries run as billing_writer (the pool does SET ROLE): it may read and append
-- events, and read and write the accounts projection, but never change or remove an event.
-- The append-only trigger stays as a second line of defence against the owner itself.
-- Roles belong to the whole cluster, so another database may have created it already.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'billing_writer') THEN
        CREATE ROLE billing_writer NOLOGIN;
    END IF;
END;
$$;

REVOKE ALL ON account_events, accounts FROM billing_writer;
GRANT SELECT, INSERT ON account_events TO billing_writer;
GRANT SELECT, INSERT, UPDATE ON accounts TO billing_writer;
GRANT billing_writer TO CURRENT_USER;
