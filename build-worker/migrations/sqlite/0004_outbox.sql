-- Events of committed changes (a build's end), waiting for the relay to publish them to
-- the event bus (kiln_common::events::outbox): appended once a change commits, deleted
-- once the bus confirmed them, published in seq order.
CREATE TABLE build_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL
);
