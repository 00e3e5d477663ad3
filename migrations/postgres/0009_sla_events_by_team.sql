-- SLA warnings and breaches by team, for `/metrics` (SQLite's 0021, which explains it).
CREATE INDEX events_sla_team ON events (((data::jsonb) ->> 'team'), kind)
    WHERE kind IN ('sla.warning', 'sla.breached');
