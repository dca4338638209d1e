-- What each command asked, beside its id: the same idempotency key sent again with another
-- command (another kind, amount, description, currency or reason) is refused, also when the key
-- is older than the workflow's memory and only the log remembers it. Events recorded before this
-- column existed have none, and a repeat of their key is answered as a plain duplicate.
ALTER TABLE account_events
    ADD COLUMN command_fingerprint text CHECK (length(command_fingerprint) <= 200);
