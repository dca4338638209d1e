-- The worker logs in as billing_worker, a role of its own. Until now it logged in as the owner
-- and did SET ROLE billing_writer, but a session can RESET ROLE to its login user, and the owner
-- may drop the append-only trigger. billing_worker owns nothing and is a member of nothing but
-- billing_writer, whose privileges it inherits (0002: read and append events, read and write
-- the accounts projection): it cannot change or remove an event, alter a table, disable its
-- trigger or SET ROLE to the owner.
--
-- billing_writer stays the role that holds the grants, so a deployment that still logs in as
-- the owner with BILLING_DB_ROLE=billing_writer keeps working, and a new table is granted once,
-- to billing_writer, in the migration that creates it. A projection the worker upserts:
--     GRANT SELECT, INSERT, UPDATE ON statement_lines TO billing_writer;
-- one it only reads:
--     GRANT SELECT ON projection_checkpoints TO billing_writer;
-- Never UPDATE, DELETE or TRUNCATE on account_events, and never ownership of anything.
--
-- The worker reads schema_migrations to check, at start, that the database is migrated.
--
-- Roles belong to the whole cluster: whoever administers it creates billing_worker (with a
-- password, where the server asks for one); the local stack and the test fixtures do
-- (devstack/postgres.py). If it does not exist yet, it is created here without a password:
-- it can log in only where the server trusts local connections, until
-- ALTER ROLE billing_worker PASSWORD '...' gives it one.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'billing_worker') THEN
        CREATE ROLE billing_worker LOGIN;
    END IF;
END;
$$;

GRANT billing_writer TO billing_worker;
GRANT SELECT ON schema_migrations TO billing_writer;
