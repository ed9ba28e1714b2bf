-- The last number given to each application's builds: taken and raised in one statement,
-- so concurrent generates of one application each get the next number, without retries.
CREATE TABLE IF NOT EXISTS build_numbers (
    application_id  uuid PRIMARY KEY,
    last            bigint NOT NULL
);
INSERT INTO build_numbers (application_id, last)
SELECT application_id, MAX(number) FROM builds GROUP BY application_id
ON CONFLICT (application_id) DO NOTHING;
