-- /readyz writes here through the writer, so a disk that is full, read-only or locked
-- by another process is reported as not ready instead of answering 200 while every
-- write fails. One row, rewritten in place.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    writes INTEGER NOT NULL
);
