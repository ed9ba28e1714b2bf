-- The last number given to each application's builds: taken and raised in one statement,
-- so concurrent generates of one application each get the next number, without retries.
-- SQLite mirror of postgres/0003_build_numbers.sql.
CREATE TABLE IF NOT EXISTS build_numbers (
    application_id  text PRIMARY KEY,
    last            integer NOT NULL
);
INSERT INTO build_numbers (application_id, last)
SELECT application_id, MAX(number) FROM builds WHERE true GROUP BY application_id
ON CONFLICT (application_id) DO NOTHING;
