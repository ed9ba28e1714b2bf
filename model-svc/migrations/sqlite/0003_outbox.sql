-- Events of committed changes, waiting for the relay to publish them to the event bus
-- (kiln_common::events::outbox): appended once a change commits, deleted once the bus
-- confirmed them, published in seq order.
CREATE TABLE model_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL
);
