-- `/metrics` counts the SLA warnings and breaches of each team from the event log at
-- every scrape: counters that survive restarts and agree across daemons. This index holds
-- only those events, by the team they were recorded for (kept through an erasure), so
-- the count walks it alone, however many other events the desk has.
CREATE INDEX events_sla_team ON events (json_extract(data, '$.team'), kind)
    WHERE kind IN ('sla.warning', 'sla.breached');
