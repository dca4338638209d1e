-- Closing an account that holds money: BALANCE_PAID_OUT records the payout before ACCOUNT_CLOSED.

ALTER TABLE account_events DROP CONSTRAINT account_events_event_type_check;
ALTER TABLE account_events ADD CONSTRAINT account_events_event_type_check CHECK (event_type IN (
    'ACCOUNT_CREATED', 'FUND_ADDED', 'CHARGE_APPLIED', 'CHARGE_DECLINED', 'COMMAND_REJECTED',
    'ACCOUNT_CLOSED', 'REFUND_APPLIED', 'INVOICE_DRAFTED', 'INVOICE_FINALIZED',
    'CREDIT_NOTE_ISSUED', 'BALANCE_PAID_OUT'));
