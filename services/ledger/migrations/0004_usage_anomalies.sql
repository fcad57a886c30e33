-- Spend anomalies (issue 4 item 7): an hour's spend per team, feature or requested model that
-- exceeds `ratio` x its seasonality-aware baseline (the mean of the same hour of week over the
-- previous N weeks, missing weeks counting as zero) and a minimum amount. Written by the
-- ledger's maintenance thread from the hourly rollups; one row per hour, dimension and value.
CREATE TABLE usage_anomalies (
  hour             timestamptz    NOT NULL,
  dimension        text           NOT NULL,  -- team | feature | requested_model
  value            text           NOT NULL,
  expected_usd     numeric(38,12) NOT NULL,
  actual_usd       numeric(38,12) NOT NULL,
  baseline_weeks   integer        NOT NULL,
  -- Top (team, feature, requested_model, served_deployment) contributors of the hour's spend.
  top_contributors jsonb          NOT NULL DEFAULT '[]'::jsonb,
  detected_at      timestamptz    NOT NULL DEFAULT now(),
  PRIMARY KEY (hour, dimension, value)
);
