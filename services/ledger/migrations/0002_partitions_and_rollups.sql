-- Schema for scale (issue 4 item 2), applied in place to a database created by 0001:
--   * usage_events becomes a table partitioned by month on ts (usage_events_pYYYYMM, UTC months).
--     Existing rows are moved into it inside this migration's transaction.
--   * A partitioned table's primary key must include ts, so exactly-once on event_id is enforced
--     by usage_event_ids (event_id PRIMARY KEY), inserted in the same transaction as the event.
--   * usage_rollups_hourly holds one row per UTC hour and attribution/routing key, maintained in
--     the insert's transaction from the newly inserted rows only (replays add nothing).
--   * Partition helpers used by the ledger's maintenance thread and by the ingest path.

-- ---- 1. Move the 0001 table aside (its index names are reused below). ----
ALTER TABLE usage_events RENAME TO usage_events_v1;
ALTER INDEX usage_events_pkey RENAME TO usage_events_v1_pkey;
ALTER INDEX usage_events_ts_idx RENAME TO usage_events_v1_ts_idx;
ALTER INDEX usage_events_team_ts_idx RENAME TO usage_events_v1_team_ts_idx;
ALTER INDEX usage_events_feature_ts_idx RENAME TO usage_events_v1_feature_ts_idx;

-- ---- 2. The partitioned table: same columns, defaults and CHECK constraints. ----
CREATE TABLE usage_events (LIKE usage_events_v1 INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY RANGE (ts);

-- Creates the partition holding `at` (its UTC month) unless it exists; returns its name.
-- Serialised by an advisory lock so that replicas and the ingest path never race on the catalog.
CREATE FUNCTION tollgate_ensure_usage_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  lo timestamptz := date_trunc('month', at, 'UTC');
  hi timestamptz := ((date_trunc('month', at, 'UTC') AT TIME ZONE 'UTC') + interval '1 month')
                    AT TIME ZONE 'UTC';
  part text := 'usage_events_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
  IF to_regclass(part) IS NOT NULL THEN
    RETURN part;
  END IF;
  PERFORM pg_advisory_xact_lock(7740150880153088101);  -- 'tollgate partitions'
  -- This statement's catalog snapshot may predate a concurrent creator's commit: a duplicate
  -- means the partition exists, which is all we want.
  BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
  EXCEPTION WHEN duplicate_table OR unique_violation THEN
    NULL;
  END;
  RETURN part;
END
$fn$;

-- Drops every partition whose whole month lies before `cutoff` (and the idempotency keys of its
-- events); returns the dropped partition names. Rollups are kept (they are the long-term record).
CREATE FUNCTION tollgate_drop_usage_partitions_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
  part record;
  hi timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(7740150880153088101);
  FOR part IN
    SELECT c.relname
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'usage_events'::regclass AND c.relname ~ '^usage_events_p[0-9]{6}$'
    ORDER BY c.relname
  LOOP
    hi := ((to_date(substr(part.relname, 15), 'YYYYMM')::timestamp) + interval '1 month')
          AT TIME ZONE 'UTC';
    IF hi <= cutoff THEN
      EXECUTE format('DROP TABLE %I', part.relname);
      DELETE FROM usage_event_ids WHERE ts < hi;
      RETURN NEXT part.relname;
    END IF;
  END LOOP;
END
$fn$;

-- One partition per month that has events, plus the current one.
SELECT tollgate_ensure_usage_partition(m)
FROM (SELECT DISTINCT date_trunc('month', ts, 'UTC') AS m FROM usage_events_v1
      UNION SELECT date_trunc('month', now(), 'UTC')) months;

-- ---- 3. Exactly-once keys. ----
CREATE TABLE usage_event_ids (
  event_id text        PRIMARY KEY,
  ts       timestamptz NOT NULL  -- the event's ts: retention deletes keys with their partition
);

-- ---- 4. Hourly rollups. Dimension columns use usage_events' names. ----
CREATE TABLE usage_rollups_hourly (
  hour                  timestamptz    NOT NULL,  -- UTC hour start
  team                  text           NOT NULL,
  feature               text           NOT NULL,
  customer              text           NOT NULL,
  api_key_id            text           NOT NULL,
  environment           text           NOT NULL,
  requested_model       text           NOT NULL,
  served_deployment     text           NOT NULL,
  provider              text           NOT NULL,
  upstream_model        text           NOT NULL,
  region                text           NOT NULL,
  endpoint              text           NOT NULL,
  requests              bigint         NOT NULL,
  input_tokens          bigint         NOT NULL,
  cached_input_tokens   bigint         NOT NULL,
  cache_write_5m_tokens bigint         NOT NULL,
  cache_write_1h_tokens bigint         NOT NULL,
  output_tokens         bigint         NOT NULL,
  reasoning_tokens      bigint         NOT NULL,
  cost_usd              numeric(38,12) NOT NULL,
  PRIMARY KEY (hour, team, feature, customer, api_key_id, environment, requested_model,
               served_deployment, provider, upstream_model, region, endpoint)
);

-- ---- 5. Move the rows. ----
INSERT INTO usage_events SELECT * FROM usage_events_v1;
INSERT INTO usage_event_ids (event_id, ts) SELECT event_id, ts FROM usage_events_v1;
INSERT INTO usage_rollups_hourly
SELECT date_trunc('hour', ts, 'UTC'), team, feature, customer, api_key_id, environment,
       requested_model, served_deployment, provider, upstream_model, region, endpoint,
       count(*), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_5m_tokens),
       sum(cache_write_1h_tokens), sum(output_tokens), sum(reasoning_tokens), sum(cost_usd)
FROM usage_events_v1
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
DROP TABLE usage_events_v1;

-- ---- 6. Keys and indexes (built after the load). ----
ALTER TABLE usage_events ADD PRIMARY KEY (event_id, ts);
CREATE INDEX usage_events_ts_idx ON usage_events (ts);
CREATE INDEX usage_events_team_ts_idx ON usage_events (team, ts);
CREATE INDEX usage_events_feature_ts_idx ON usage_events (feature, ts);
CREATE INDEX usage_events_deployment_ts_idx ON usage_events (served_deployment, ts);
CREATE INDEX usage_events_tags_idx ON usage_events USING gin (tags jsonb_path_ops);
CREATE INDEX usage_rollups_hourly_team_hour_idx ON usage_rollups_hourly (team, hour);
