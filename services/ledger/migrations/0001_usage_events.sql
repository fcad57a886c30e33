-- One row per usage event (proto tollgate.v1.UsageEvent), written only by the ledger.
-- event_id is the idempotency key: replays of an event are ignored (INSERT ... ON CONFLICT DO NOTHING).
-- Money: cost_usd is NUMERIC(38,12) (exact pico-dollars); unit prices are integer pico-dollars per token.
CREATE TABLE usage_events (
  event_id                  text        PRIMARY KEY,
  request_id                text        NOT NULL DEFAULT '',
  ts                        timestamptz NOT NULL,  -- UsageEvent.time_unix_us (request arrival)

  -- Attribution.
  team                      text        NOT NULL DEFAULT '',
  feature                   text        NOT NULL DEFAULT '',
  customer                  text        NOT NULL DEFAULT '',
  api_key_id                text        NOT NULL DEFAULT '',
  environment               text        NOT NULL DEFAULT '',
  tags                      jsonb       NOT NULL DEFAULT '{}'::jsonb,

  -- Routing.
  endpoint                  text        NOT NULL DEFAULT '',
  requested_model           text        NOT NULL DEFAULT '',
  served_deployment         text        NOT NULL DEFAULT '',
  provider                  text        NOT NULL DEFAULT '',
  upstream_model            text        NOT NULL DEFAULT '',
  region                    text        NOT NULL DEFAULT '',
  stream                    boolean     NOT NULL DEFAULT false,

  -- Tokens (normalised: cached/cache-write are subsets of input, reasoning of output).
  input_tokens              bigint      NOT NULL DEFAULT 0,
  cached_input_tokens       bigint      NOT NULL DEFAULT 0,
  cache_write_5m_tokens     bigint      NOT NULL DEFAULT 0,
  cache_write_1h_tokens     bigint      NOT NULL DEFAULT 0,
  output_tokens             bigint      NOT NULL DEFAULT 0,
  reasoning_tokens          bigint      NOT NULL DEFAULT 0,
  usage_estimated           boolean     NOT NULL DEFAULT false,

  -- Unit prices applied, pico-dollars per token.
  price_input_pico          bigint      NOT NULL DEFAULT 0,
  price_cached_input_pico   bigint      NOT NULL DEFAULT 0,
  price_cache_write_5m_pico bigint      NOT NULL DEFAULT 0,
  price_cache_write_1h_pico bigint      NOT NULL DEFAULT 0,
  price_output_pico         bigint      NOT NULL DEFAULT 0,
  price_reasoning_pico      bigint      NOT NULL DEFAULT 0,  -- 0: reasoning billed at output price
  price_card_version        text        NOT NULL DEFAULT '',
  cost_usd                  numeric(38,12) NOT NULL,       -- UsageEvent.cost_pico / 1e12, exact

  -- Outcome.
  latency_us                bigint      NOT NULL DEFAULT 0,
  ttft_us                   bigint      NOT NULL DEFAULT 0,
  http_status               integer     NOT NULL DEFAULT 0,
  error_code                text        NOT NULL DEFAULT '',
  attempts                  jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- [{deployment_id, http_status, error, latency_us}]

  ingested_at               timestamptz NOT NULL DEFAULT now(),

  CONSTRAINT usage_events_event_id_not_empty CHECK (event_id <> ''),
  CONSTRAINT usage_events_tokens_non_negative CHECK (
    input_tokens >= 0 AND cached_input_tokens >= 0 AND cache_write_5m_tokens >= 0 AND
    cache_write_1h_tokens >= 0 AND output_tokens >= 0 AND reasoning_tokens >= 0),
  CONSTRAINT usage_events_input_subsets CHECK (
    cached_input_tokens::numeric + cache_write_5m_tokens + cache_write_1h_tokens <= input_tokens),
  CONSTRAINT usage_events_reasoning_subset CHECK (reasoning_tokens <= output_tokens),
  CONSTRAINT usage_events_prices_non_negative CHECK (
    price_input_pico >= 0 AND price_cached_input_pico >= 0 AND price_cache_write_5m_pico >= 0 AND
    price_cache_write_1h_pico >= 0 AND price_output_pico >= 0 AND price_reasoning_pico >= 0),
  CONSTRAINT usage_events_cost_non_negative CHECK (cost_usd >= 0),
  -- Re-pricing the stored token counts with the stored unit prices reproduces the stored cost to
  -- the digit (DESIGN.md "Accounting model"); same formula as PriceUsage in services/common/money.h.
  CONSTRAINT usage_events_cost_reproducible CHECK (
    cost_usd * 1000000000000 =
      (input_tokens::numeric - cached_input_tokens - cache_write_5m_tokens - cache_write_1h_tokens)
        * price_input_pico
      + cached_input_tokens::numeric * price_cached_input_pico
      + cache_write_5m_tokens::numeric * price_cache_write_5m_pico
      + cache_write_1h_tokens::numeric * price_cache_write_1h_pico
      + (output_tokens::numeric - reasoning_tokens) * price_output_pico
      + reasoning_tokens::numeric
        * (CASE WHEN price_reasoning_pico <> 0 THEN price_reasoning_pico ELSE price_output_pico END))
);

-- Spend queries always bound time and usually filter or group by team or feature.
CREATE INDEX usage_events_ts_idx ON usage_events (ts);
CREATE INDEX usage_events_team_ts_idx ON usage_events (team, ts);
CREATE INDEX usage_events_feature_ts_idx ON usage_events (feature, ts);
