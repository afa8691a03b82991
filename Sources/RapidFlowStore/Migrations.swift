/// The versioned schema. Each migration is applied once, in order, inside a transaction,
/// and recorded in `schema_migrations`. Never edit a released migration: add a new one.
enum Migrations {
    /// `{ID}` and `{BLOB}` are filled in per dialect, so one list serves SQLite and PostgreSQL.
    static let all: [(version: Int, statements: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE pipelines (
                    id {ID}, name TEXT NOT NULL, config TEXT NOT NULL,
                    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE jobs (
                    id {ID}, kind TEXT NOT NULL, pipeline_id BIGINT, pipeline_name TEXT,
                    status TEXT NOT NULL, snapshot TEXT NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0,
                    container_id TEXT, retry_of BIGINT,
                    created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT)
                """,
                "CREATE INDEX jobs_by_status ON jobs (status, id)",
                "CREATE INDEX jobs_by_pipeline ON jobs (pipeline_id, id)",
                """
                CREATE TABLE steps (
                    id {ID}, job_id BIGINT NOT NULL, order_num INTEGER NOT NULL, type TEXT NOT NULL,
                    name TEXT, content TEXT NOT NULL, phase TEXT NOT NULL, status TEXT NOT NULL,
                    exit_code INTEGER, process_group INTEGER,
                    created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT)
                """,
                "CREATE INDEX steps_by_job ON steps (job_id, order_num)",
                """
                CREATE TABLE step_output (
                    step_id BIGINT NOT NULL, byte_offset BIGINT NOT NULL, data {BLOB} NOT NULL,
                    PRIMARY KEY (step_id, byte_offset))
                """,
                """
                CREATE TABLE job_environment (
                    id {ID}, job_id BIGINT NOT NULL, position INTEGER NOT NULL,
                    key TEXT NOT NULL, value TEXT NOT NULL)
                """,
                "CREATE INDEX job_environment_by_job ON job_environment (job_id, position)",
            ]
        ),
        (2, ["ALTER TABLE jobs ADD COLUMN ports TEXT"]),
        (
            // Replicas: which service runs a job, until when its lease holds, and a cancel
            // asked for on another replica.
            3,
            [
                "ALTER TABLE jobs ADD COLUMN owner TEXT",
                "ALTER TABLE jobs ADD COLUMN lease_until BIGINT",
                "ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
            ]
        ),
        (
            // The branch in a column of its own, so job lists filter by it without reading snapshots.
            4,
            [
                "ALTER TABLE jobs ADD COLUMN branch TEXT",
                "UPDATE jobs SET branch = {SNAPSHOT_BRANCH}",
                "CREATE INDEX jobs_by_branch ON jobs (branch, id)",
            ]
        ),
        (
            // Stored secrets, sealed (AES-GCM) by the service before they reach the store: the
            // database alone never holds a value. A job's environment names the secret of a
            // variable instead of holding its value; a pipeline may belong to an owner.
            5,
            [
                """
                CREATE TABLE secrets (
                    id {ID}, name TEXT NOT NULL, scope_kind TEXT NOT NULL, scope_value TEXT NOT NULL,
                    sealed {BLOB} NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
                    last_used_at BIGINT, last_used_job BIGINT)
                """,
                "CREATE UNIQUE INDEX secrets_by_scope ON secrets (name, scope_kind, scope_value)",
                "ALTER TABLE job_environment ADD COLUMN secret TEXT",
                "ALTER TABLE pipelines ADD COLUMN owner TEXT",
            ]
        ),
        (
            // Owners and priorities: the team a job belongs to (the replica running it stays in
            // `owner`) and how soon it is taken, in columns the claim statement orders by;
            // owners' own limits on the jobs they run at once.
            6,
            [
                "ALTER TABLE jobs ADD COLUMN account TEXT NOT NULL DEFAULT 'default'",
                "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 1",
                "UPDATE jobs SET account = {SNAPSHOT_ACCOUNT}",
                "CREATE INDEX jobs_queue ON jobs (status, account, priority, id)",
                """
                CREATE TABLE owner_limits (
                    owner TEXT PRIMARY KEY, max_concurrent_jobs INTEGER NOT NULL, updated_at BIGINT NOT NULL)
                """,
            ]
        ),
        (
            // Concurrency groups: at most one running job per group, the oldest pending one next.
            // The partial index holds only jobs in a group, so jobs without one cost nothing.
            // Pipeline names unique per owner. Scoped tokens and the audit log.
            7,
            [
                "ALTER TABLE jobs ADD COLUMN concurrency_group TEXT",
                "CREATE INDEX jobs_by_group ON jobs (concurrency_group, status, id) WHERE concurrency_group IS NOT NULL",
                // Pipeline names are unique per owner; older duplicates keep their name with
                // their id appended, so the index can be made.
                """
                UPDATE pipelines SET name = name || '-' || CAST(id AS TEXT)
                WHERE id NOT IN (SELECT MIN(id) FROM pipelines GROUP BY COALESCE(owner, 'default'), name)
                """,
                "CREATE UNIQUE INDEX pipelines_by_owner_name ON pipelines (COALESCE(owner, 'default'), name)",
                // Scoped API tokens, kept as a SHA-256 of the token: the store never holds one.
                """
                CREATE TABLE api_tokens (
                    id {ID}, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, owners TEXT, token_hash TEXT NOT NULL UNIQUE,
                    created_at BIGINT NOT NULL, last_used_at BIGINT, revoked_at BIGINT)
                """,
                // Every state-changing call: who, what, on which job or pipeline, when, from where.
                """
                CREATE TABLE audit_log (
                    id {ID}, at BIGINT NOT NULL, actor TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
                    target TEXT, owner TEXT, address TEXT, status INTEGER NOT NULL)
                """,
                "CREATE INDEX audit_by_owner ON audit_log (owner, id)",
            ]
        ),
        (
            // Webhooks. Incoming: hooks a forge (or a git server) signs its deliveries for, and
            // the delivery ids seen, so a replay runs nothing. Outgoing: registered URLs and their
            // deliveries. A delivery row is written by a trigger in the same transaction as the
            // state change it announces (an outbox), so a crash between the change and the
            // sending loses nothing; with no webhook registered the triggers write nothing.
            8,
            [
                """
                CREATE TABLE hooks (
                    id {ID}, name TEXT NOT NULL UNIQUE, forge TEXT NOT NULL, owner TEXT, secret {BLOB} NOT NULL,
                    status_token {BLOB}, status_url TEXT, created_at BIGINT NOT NULL, last_delivery_at BIGINT)
                """,
                """
                CREATE TABLE hook_deliveries (
                    forge TEXT NOT NULL, delivery_id TEXT NOT NULL, hook_id BIGINT NOT NULL, received_at BIGINT NOT NULL,
                    answer TEXT, PRIMARY KEY (forge, delivery_id))
                """,
                "CREATE INDEX hook_deliveries_by_time ON hook_deliveries (received_at)",
                """
                CREATE TABLE webhooks (
                    id {ID}, url TEXT NOT NULL, events TEXT NOT NULL, owner TEXT, pipeline_id BIGINT, secret {BLOB} NOT NULL,
                    created_at BIGINT NOT NULL, disabled_at BIGINT, disabled_reason TEXT)
                """,
                """
                CREATE TABLE webhook_deliveries (
                    id {ID}, webhook_id BIGINT NOT NULL, job_id BIGINT NOT NULL, step_id BIGINT, event TEXT NOT NULL,
                    state TEXT NOT NULL, tries INTEGER NOT NULL, next_try_at BIGINT NOT NULL, claimed_by TEXT, claimed_until BIGINT,
                    last_status INTEGER, last_error TEXT, last_duration_ms INTEGER, body TEXT,
                    created_at BIGINT NOT NULL, delivered_at BIGINT)
                """,
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_try_at)",
                "CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (webhook_id, job_id, id)",
                """
                {SQLITE}CREATE TRIGGER jobs_announce_created AFTER INSERT ON jobs BEGIN
                    INSERT INTO webhook_deliveries (webhook_id, job_id, step_id, event, state, tries, next_try_at, created_at)
                    SELECT w.id, NEW.id, NULL, 'job.created', 'pending', 0, NEW.created_at, NEW.created_at FROM webhooks w
                    WHERE w.disabled_at IS NULL AND w.events LIKE '%,' || 'job.created' || ',%' AND (w.owner IS NULL OR w.owner = NEW.account) AND (w.pipeline_id IS NULL OR w.pipeline_id = NEW.pipeline_id);
                END
                """,
                """
                {SQLITE}CREATE TRIGGER jobs_announce_status AFTER UPDATE OF status ON jobs
                WHEN OLD.status <> NEW.status AND NEW.status <> 'pending' BEGIN
                    INSERT INTO webhook_deliveries (webhook_id, job_id, step_id, event, state, tries, next_try_at, created_at)
                    SELECT w.id, NEW.id, NULL, (CASE NEW.status WHEN 'running' THEN 'job.started' ELSE 'job.finished' END), 'pending', 0, COALESCE(NEW.finished_at, NEW.started_at, NEW.created_at), COALESCE(NEW.finished_at, NEW.started_at, NEW.created_at) FROM webhooks w
                    WHERE w.disabled_at IS NULL AND w.events LIKE '%,' || (CASE NEW.status WHEN 'running' THEN 'job.started' ELSE 'job.finished' END) || ',%' AND (w.owner IS NULL OR w.owner = NEW.account) AND (w.pipeline_id IS NULL OR w.pipeline_id = NEW.pipeline_id);
                END
                """,
                """
                {SQLITE}CREATE TRIGGER steps_announce_finished AFTER UPDATE OF status ON steps
                WHEN OLD.status <> NEW.status AND NEW.status IN ('success', 'failed', 'cancelled') BEGIN
                    INSERT INTO webhook_deliveries (webhook_id, job_id, step_id, event, state, tries, next_try_at, created_at)
                    SELECT w.id, NEW.job_id, NEW.id, 'step.finished', 'pending', 0, COALESCE(NEW.finished_at, NEW.created_at), COALESCE(NEW.finished_at, NEW.created_at) FROM webhooks w
                    WHERE w.disabled_at IS NULL AND w.events LIKE '%,' || 'step.finished' || ',%' AND (w.owner IS NULL OR w.owner = (SELECT account FROM jobs WHERE id = NEW.job_id)) AND (w.pipeline_id IS NULL OR w.pipeline_id = (SELECT pipeline_id FROM jobs WHERE id = NEW.job_id));
                END
                """,
                """
                {POSTGRES}CREATE FUNCTION rapidflow_announce_job() RETURNS trigger LANGUAGE plpgsql AS $$
                DECLARE ev TEXT;
                BEGIN
                    IF TG_OP = 'INSERT' THEN ev := 'job.created';
                    ELSIF NEW.status = OLD.status OR NEW.status = 'pending' THEN RETURN NULL;
                    ELSIF NEW.status = 'running' THEN ev := 'job.started';
                    ELSE ev := 'job.finished';
                    END IF;
                    INSERT INTO webhook_deliveries (webhook_id, job_id, step_id, event, state, tries, next_try_at, created_at)
                    SELECT w.id, NEW.id, NULL, ev, 'pending', 0, COALESCE(NEW.finished_at, NEW.started_at, NEW.created_at), COALESCE(NEW.finished_at, NEW.started_at, NEW.created_at) FROM webhooks w
                    WHERE w.disabled_at IS NULL AND w.events LIKE '%,' || ev || ',%' AND (w.owner IS NULL OR w.owner = NEW.account) AND (w.pipeline_id IS NULL OR w.pipeline_id = NEW.pipeline_id);
                    RETURN NULL;
                END
                $$
                """,
                "{POSTGRES}CREATE TRIGGER jobs_announce AFTER INSERT OR UPDATE OF status ON jobs FOR EACH ROW EXECUTE FUNCTION rapidflow_announce_job()",
                """
                {POSTGRES}CREATE FUNCTION rapidflow_announce_step() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.status = OLD.status OR NEW.status NOT IN ('success', 'failed', 'cancelled') THEN RETURN NULL; END IF;
                    INSERT INTO webhook_deliveries (webhook_id, job_id, step_id, event, state, tries, next_try_at, created_at)
                    SELECT w.id, NEW.job_id, NEW.id, 'step.finished', 'pending', 0, COALESCE(NEW.finished_at, NEW.created_at), COALESCE(NEW.finished_at, NEW.created_at) FROM webhooks w
                    WHERE w.disabled_at IS NULL AND w.events LIKE '%,' || 'step.finished' || ',%' AND (w.owner IS NULL OR w.owner = (SELECT account FROM jobs WHERE id = NEW.job_id)) AND (w.pipeline_id IS NULL OR w.pipeline_id = (SELECT pipeline_id FROM jobs WHERE id = NEW.job_id));
                    RETURN NULL;
                END
                $$
                """,
                "{POSTGRES}CREATE TRIGGER steps_announce AFTER UPDATE OF status ON steps FOR EACH ROW EXECUTE FUNCTION rapidflow_announce_step()",
            ]
        ),
        (
            // Caches and artifacts: their files live under the data directory of the replica
            // that wrote them (`instance`); a row is written only once its files are complete.
            9,
            [
                """
                CREATE TABLE caches (
                    id {ID}, owner TEXT NOT NULL, pipeline_id BIGINT NOT NULL, cache_key TEXT NOT NULL, directory TEXT NOT NULL,
                    instance TEXT NOT NULL, size_bytes BIGINT NOT NULL, format TEXT NOT NULL, job_id BIGINT,
                    created_at BIGINT NOT NULL, last_used_at BIGINT NOT NULL)
                """,
                "CREATE UNIQUE INDEX caches_by_key ON caches (owner, pipeline_id, cache_key)",
                "CREATE INDEX caches_by_use ON caches (last_used_at)",
                """
                CREATE TABLE artifacts (
                    id {ID}, job_id BIGINT NOT NULL, path TEXT NOT NULL, size_bytes BIGINT NOT NULL, sha256 TEXT NOT NULL,
                    instance TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)
                """,
                "CREATE UNIQUE INDEX artifacts_by_job ON artifacts (job_id, path)",
                "CREATE INDEX artifacts_by_expiry ON artifacts (expires_at)",
            ]
        ),
        (
            // Retention (`--keep-jobs-days`) and the workspace reaper find old finished jobs by this.
            10,
            ["CREATE INDEX jobs_by_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL"]
        ),
        (
            // What a list of jobs shows, in columns of their own: listing reads no snapshot JSON.
            // `{JSON:a.b}` is the snapshot's field in each dialect.
            11,
            [
                "ALTER TABLE jobs ADD COLUMN repo TEXT",
                "ALTER TABLE jobs ADD COLUMN language TEXT",
                "ALTER TABLE jobs ADD COLUMN version TEXT",
                "ALTER TABLE jobs ADD COLUMN image TEXT",
                "ALTER TABLE jobs ADD COLUMN folder TEXT",
                "ALTER TABLE jobs ADD COLUMN expose_ports INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE jobs ADD COLUMN event TEXT",
                "ALTER TABLE jobs ADD COLUMN commit_sha TEXT",
                "ALTER TABLE jobs ADD COLUMN commit_ref TEXT",
                "ALTER TABLE jobs ADD COLUMN commit_message TEXT",
                "ALTER TABLE jobs ADD COLUMN commit_author TEXT",
                """
                UPDATE jobs SET repo = {JSON:repo}, language = {JSON:language}, version = {JSON:version}, image = {JSON:image},
                    folder = {JSON:folder}, expose_ports = CASE WHEN {JSON:exposePorts} IN ('1', 'true') THEN 1 ELSE 0 END,
                    event = {JSON:event}, commit_sha = {JSON:commit.sha}, commit_ref = {JSON:commit.ref},
                    commit_message = {JSON:commit.message}, commit_author = {JSON:commit.author}
                """,
            ]
        ),
        (
            // Fencing: each claim of a job takes the next epoch; what its replica writes for the
            // running job counts only while the job is running, its own, at that epoch.
            12,
            ["ALTER TABLE jobs ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0"]
        ),
        (
            // Where each replica is reached (its advertise URL): a replica redirects a runner
            // whose job another replica runs there.
            13,
            ["CREATE TABLE replicas (instance_id TEXT PRIMARY KEY, url TEXT NOT NULL, seen_at BIGINT NOT NULL)"]
        ),
    ]
}
