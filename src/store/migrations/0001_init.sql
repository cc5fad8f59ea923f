-- Tenants, API keys and the model registry (issue 2).

CREATE TABLE tenants (
  id          text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  -- An operator tenant's admin keys may create and list other tenants.
  operator    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id              text PRIMARY KEY,
  tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name            text NOT NULL DEFAULT '',
  -- Hex SHA-256 of the whole key; the key itself is never stored.
  digest          text NOT NULL UNIQUE,
  display_prefix  text NOT NULL,
  scopes          text[] NOT NULL,
  expires_at      timestamptz,
  revoked_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

CREATE TABLE models (
  id          text PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name        text NOT NULL,
  -- Serving settings (batching, queue, timeout); see src/registry/settings.ts.
  settings    jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE model_versions (
  model_id         text NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  version          integer NOT NULL,
  runtime          text NOT NULL,
  -- Content address of the artifact in the artifact store.
  artifact_sha256  text NOT NULL,
  size_bytes       bigint NOT NULL,
  -- Input and output tensors read from the model: [{name, datatype, shape}].
  signature        jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'ready',
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (model_id, version)
);
