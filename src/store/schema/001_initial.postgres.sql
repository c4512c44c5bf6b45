-- ocicert job store, PostgreSQL, version 1: the tables of the first release. IF NOT EXISTS lets
-- a database created before schema_version existed adopt this version unchanged.
CREATE TABLE IF NOT EXISTS jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    callback_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (kind, registry, repository, digest)
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, not_before);
CREATE INDEX IF NOT EXISTS jobs_digest ON jobs (digest);
CREATE TABLE IF NOT EXISTS reports (
    job_id BIGINT PRIMARY KEY REFERENCES jobs (id),
    scanned_at BIGINT NOT NULL,
    highest_severity TEXT,
    findings BIGINT NOT NULL,
    certificates BIGINT NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank BIGINT NOT NULL,
    message TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    in_final_image BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_job ON findings (job_id);
CREATE TABLE IF NOT EXISTS certificates (
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    fingerprint TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    not_after TEXT NOT NULL,
    not_after_unix BIGINT NOT NULL,
    is_ca BOOLEAN NOT NULL,
    self_signed BOOLEAN NOT NULL,
    trust_anchor BOOLEAN NOT NULL,
    key_algorithm TEXT NOT NULL,
    paths TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_job ON certificates (job_id);
CREATE INDEX IF NOT EXISTS certificates_fingerprint ON certificates (fingerprint);
