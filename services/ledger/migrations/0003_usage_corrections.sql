-- Repricing (issue 4 item 3). History is never edited: a corrected price card produces one row
-- per affected event here, and usage_rollups_hourly.cost_usd is adjusted by delta_usd in the same
-- transaction. An event's effective cost is usage_events.cost_usd plus the sum of its deltas;
-- old_cost_usd is the effective cost before this correction, so successive repricings chain.
CREATE TABLE usage_corrections (
  correction_id             bigserial      PRIMARY KEY,
  repricing_id              text           NOT NULL,  -- one Reprice call
  event_id                  text           NOT NULL,
  event_ts                  timestamptz    NOT NULL,  -- usage_events.ts of the event
  old_cost_usd              numeric(38,12) NOT NULL,
  new_cost_usd              numeric(38,12) NOT NULL,
  delta_usd                 numeric(38,12) NOT NULL,
  -- The unit prices that produced new_cost_usd (pico-dollars per token).
  price_input_pico          bigint         NOT NULL,
  price_cached_input_pico   bigint         NOT NULL,
  price_cache_write_5m_pico bigint         NOT NULL,
  price_cache_write_1h_pico bigint         NOT NULL,
  price_output_pico         bigint         NOT NULL,
  price_reasoning_pico      bigint         NOT NULL,
  price_card_version        text           NOT NULL DEFAULT '',
  reason                    text           NOT NULL DEFAULT '',
  created_at                timestamptz    NOT NULL DEFAULT now(),
  CONSTRAINT usage_corrections_delta CHECK (delta_usd = new_cost_usd - old_cost_usd),
  CONSTRAINT usage_corrections_new_cost_non_negative CHECK (new_cost_usd >= 0)
);
CREATE INDEX usage_corrections_event_idx ON usage_corrections (event_id);
CREATE INDEX usage_corrections_ts_idx ON usage_corrections (event_ts);
