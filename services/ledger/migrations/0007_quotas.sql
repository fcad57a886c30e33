-- Budgets and rate limits (issue 8 items 2 and 3; proto/tollgate/v1/quota.proto, docs/budgets.md).
-- Amounts are int64 lease units: pico-dollars (usd), tokens, requests.

-- Quotas set through Quotas.SetQuota. Keys' own rpm/tpm quotas ("k-<key id>-rpm") are derived
-- from virtual_keys and never stored here. Enum columns hold services/common/quota.h's names.
CREATE TABLE quotas (
  id             text        PRIMARY KEY,              -- 'q-' || 8 hex digits
  scope          text        NOT NULL,                 -- org | team | key | feature | customer
  team           text        NOT NULL DEFAULT '',
  subject        text        NOT NULL DEFAULT '',      -- key id, feature or customer; else ''
  unit           text        NOT NULL,                 -- usd | tokens | requests
  period         text        NOT NULL,                 -- minute | day | week | month
  limit_units    bigint      NOT NULL CHECK (limit_units > 0),
  hard           boolean     NOT NULL,
  alert_percents int[]       NOT NULL DEFAULT '{}',    -- sorted, distinct, 1..1000
  name           text        NOT NULL DEFAULT '',
  updated_at     timestamptz NOT NULL DEFAULT now(),
  updated_by     text        NOT NULL,
  UNIQUE (scope, team, subject, unit, period)
);
CREATE INDEX quotas_team ON quotas (team);

-- One row per (quota, window) that a lease or the alert pass touched. `base` is the spend the
-- usage events had recorded in the window when the row was created (0 for minute windows);
-- leases are granted on top of it. Rows of ended windows are deleted by the ledger.
CREATE TABLE quota_windows (
  quota_id     text        NOT NULL,  -- no foreign key: key-derived quotas are not in `quotas`
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  base         bigint      NOT NULL CHECK (base >= 0),
  alerts_fired int[]       NOT NULL DEFAULT '{}',
  PRIMARY KEY (quota_id, window_start)
);
CREATE INDEX quota_windows_end ON quota_windows (window_end);

-- One gateway's lease in one window. `used` is cumulative (what the gateway reported settled);
-- a released lease has granted = used. An expired lease that was never released keeps counting
-- at max(granted, used) until its window ends (conservative: never granted twice).
CREATE TABLE quota_leases (
  quota_id     text        NOT NULL,
  window_start timestamptz NOT NULL,
  gateway_id   text        NOT NULL,
  granted      bigint      NOT NULL CHECK (granted >= 0),
  used         bigint      NOT NULL CHECK (used >= 0),
  expires_at   timestamptz NOT NULL,
  released     boolean     NOT NULL DEFAULT false,
  PRIMARY KEY (quota_id, window_start, gateway_id),
  FOREIGN KEY (quota_id, window_start) REFERENCES quota_windows (quota_id, window_start)
    ON DELETE CASCADE
);
