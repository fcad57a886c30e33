-- Teams, virtual keys and the control-plane audit log (issue 8 items 1 and 5; docs/tenancy.md).
-- A key's secret is never stored: only its SHA-256 and its visible id ("tg-<id>-..." prefix).
CREATE TABLE teams (
  name       text        PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text        NOT NULL
);

CREATE TABLE virtual_keys (
  id          text        PRIMARY KEY,         -- 8 hex digits, public
  team        text        NOT NULL REFERENCES teams (name),
  name        text        NOT NULL DEFAULT '',
  key_sha256  bytea       NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  text        NOT NULL,
  expires_at  timestamptz,                     -- NULL: never
  revoked_at  timestamptz,                     -- NULL: active
  revoked_by  text,
  models      jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- JSON array of strings; [] = any
  feature     text        NOT NULL DEFAULT '',
  regions     jsonb       NOT NULL DEFAULT '[]'::jsonb,
  rpm         bigint      NOT NULL DEFAULT 0,
  tpm         bigint      NOT NULL DEFAULT 0
);
CREATE INDEX virtual_keys_team ON virtual_keys (team, created_at);

-- Every control-plane change: who (admin token name), what, before and after (JSON), when.
CREATE TABLE control_plane_audit (
  id      bigserial   PRIMARY KEY,
  at      timestamptz NOT NULL DEFAULT now(),
  actor   text        NOT NULL,
  action  text        NOT NULL,
  team    text        NOT NULL DEFAULT '',
  target  text        NOT NULL DEFAULT '',
  before  jsonb,
  after   jsonb
);
CREATE INDEX control_plane_audit_team ON control_plane_audit (team, id);
