-- Seed data for the spend dashboard test (check_dashboards.mjs --db): hourly rollups and one
-- anomaly inside the test range 2026-01-01 00:00..06:00 UTC, plus rows outside it that no query
-- may return. Expected results: spend_expected.json.
INSERT INTO usage_rollups_hourly (hour, team, feature, customer, api_key_id, environment,
  requested_model, served_deployment, provider, upstream_model, region, endpoint, requests,
  input_tokens, cached_input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens,
  reasoning_tokens, cost_usd) VALUES
  ('2026-01-01 00:00+00', 'team-a', 'feat-x', 'cust-1', 'key-a', 'prod', 'gpt-4o-mini',
   'openai-gpt-4o-mini', 'openai', 'gpt-4o-mini', 'us', '/v1/chat/completions', 10,
   1000, 200, 0, 0, 500, 0, 0.001500000000),
  ('2026-01-01 01:00+00', 'team-a', 'feat-y', 'cust-2', 'key-a', 'prod', 'gpt-4o',
   'openai-gpt-4o', 'openai', 'gpt-4o', 'us', '/v1/chat/completions', 5,
   2000, 0, 0, 0, 1000, 100, 0.015000000000),
  ('2026-01-01 01:00+00', 'team-b', 'feat-x', '', 'key-b', 'dev', 'gpt-4o-mini',
   'mock-gpt-4o-mini', 'mock', 'gpt-4o-mini', 'local', '/v1/chat/completions', 2,
   100, 0, 0, 0, 100, 0, 0.000075000000),
  -- Outside the range.
  ('2025-12-01 00:00+00', 'team-a', 'feat-x', 'cust-1', 'key-a', 'prod', 'gpt-4o-mini',
   'openai-gpt-4o-mini', 'openai', 'gpt-4o-mini', 'us', '/v1/chat/completions', 1000,
   1000000, 0, 0, 0, 1000000, 0, 100.000000000000),
  ('2026-01-02 00:00+00', 'team-c', 'feat-z', 'cust-9', 'key-c', 'prod', 'gpt-4o',
   'openai-gpt-4o', 'openai', 'gpt-4o', 'us', '/v1/chat/completions', 1000,
   1000000, 0, 0, 0, 1000000, 0, 50.000000000000);

INSERT INTO usage_anomalies (hour, dimension, value, expected_usd, actual_usd, baseline_weeks)
VALUES
  ('2026-01-01 01:00+00', 'team', 'team-a', 0.003000000000, 0.015000000000, 4),
  ('2025-12-01 00:00+00', 'team', 'team-a', 1.000000000000, 100.000000000000, 4);
