-- Ingest throughput and long-range spend queries (issue 4 item 9):
--   * Secondary indexes on the hot insert path that no query uses are dropped:
--       - usage_events_tags_idx (GIN jsonb_path_ops): tag filters and groups are written as
--         `tags ->> key`, which a jsonb_path_ops index cannot serve (only @> can);
--       - usage_events_team_ts_idx, usage_events_feature_ts_idx: team/feature spend over whole
--         hours or days is read from the rollups; raw-event queries (tags, unaligned bounds) are
--         bounded by ts and use usage_events_ts_idx.
--     Kept: the (event_id, ts) key, (ts) and (served_deployment, ts) (repricing selects by it).
--   * usage_rollups_daily: the hourly rollups summed per UTC day, maintained by the ledger in the
--     same statement and transaction as the hourly ones (ingest) and adjusted with them
--     (repricing). A spend query whose bounds are whole UTC days and whose buckets are not hours
--     reads it: 24x fewer rows for month-long ranges. Backfilled here from the hourly rollups.
-- Runs under the ledger's migration advisory lock, in one transaction; DROP INDEX on the
-- partitioned parent drops the partitions' indexes with it.

DROP INDEX IF EXISTS usage_events_tags_idx;
DROP INDEX IF EXISTS usage_events_team_ts_idx;
DROP INDEX IF EXISTS usage_events_feature_ts_idx;

CREATE TABLE usage_rollups_daily (
  day                   timestamptz    NOT NULL,  -- UTC day start
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
  PRIMARY KEY (day, team, feature, customer, api_key_id, environment, requested_model,
               served_deployment, provider, upstream_model, region, endpoint)
);

INSERT INTO usage_rollups_daily
SELECT date_trunc('day', hour, 'UTC'), team, feature, customer, api_key_id, environment,
       requested_model, served_deployment, provider, upstream_model, region, endpoint,
       sum(requests), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_5m_tokens),
       sum(cache_write_1h_tokens), sum(output_tokens), sum(reasoning_tokens), sum(cost_usd)
FROM usage_rollups_hourly
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
