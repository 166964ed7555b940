/// Schema changes, in order. Each runs once, inside a transaction, and is recorded in
/// schema_migrations; never edit a released one, append a new one.
enum Migrations {
    static let all: [(version: Int64, sql: String)] = [
        (1, """
            CREATE TABLE users (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                username TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );
            CREATE TABLE sessions (
                token_hash TEXT PRIMARY KEY,
                user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE INDEX sessions_user ON sessions(user_id);
            CREATE TABLE instances (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                state TEXT NOT NULL DEFAULT 'stopped'
                    CHECK (state IN ('stopped', 'starting', 'running', 'stopping', 'failed')),
                autostart INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );
            CREATE TABLE instance_users (
                instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
                user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                PRIMARY KEY (instance_id, user_id)
            );
            """),
        // Each instance owns a stable 65536-id range on the host (slot N: ids from
        // idBase(N)), kept across restarts so its files keep their owners; per-instance
        // limit overrides; appliance-wide settings such as the default limits.
        (2, """
            ALTER TABLE instances ADD COLUMN id_slot INTEGER;
            UPDATE instances SET id_slot = id;
            CREATE UNIQUE INDEX instances_id_slot ON instances(id_slot);
            ALTER TABLE instances ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
            CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """),
        // Many people: users can be disabled; sessions expire when idle as well as absolutely,
        // and remember where they came from (for the owner's list); API tokens, stored hashed;
        // the audit log, append-only (triggers refuse UPDATE and DELETE).
        (3, """
            ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE sessions ADD COLUMN client TEXT NOT NULL DEFAULT '';
            UPDATE sessions SET last_seen_at = created_at;
            CREATE TABLE api_tokens (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                created_at INTEGER NOT NULL,
                expires_at INTEGER,
                last_used_at INTEGER
            );
            CREATE INDEX api_tokens_user ON api_tokens(user_id);
            CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at INTEGER NOT NULL,
                actor_id INTEGER,
                actor TEXT,
                action TEXT NOT NULL,
                target TEXT,
                outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
                client TEXT NOT NULL DEFAULT '',
                detail TEXT
            );
            CREATE INDEX audit_log_at ON audit_log(at);
            CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
                BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
            CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
                BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
            """),
        // LLM providers; the API key sealed with the data dir's secret key (SecretBox), and its
        // last four characters, the only part ever shown.
        (4, """
            CREATE TABLE providers (
                name TEXT PRIMARY KEY,
                api TEXT NOT NULL CHECK (api IN ('openai-completions', 'openai-responses', 'anthropic-messages')),
                base_url TEXT NOT NULL,
                models TEXT NOT NULL DEFAULT '[]',
                api_key_sealed TEXT,
                api_key_last4 TEXT,
                updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            )
            """),
        // An instance's own key for a provider, sealed like the providers' (SecretBox), used
        // instead of the provider's key for that instance's requests.
        (5, """
            CREATE TABLE instance_provider_keys (
                instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
                provider TEXT NOT NULL,
                api_key_sealed TEXT NOT NULL,
                api_key_last4 TEXT,
                PRIMARY KEY (instance_id, provider)
            )
            """),
        // The init a running instance was launched with (host pid and ProcessIdentity), so a
        // restarted daemon re-attaches to that process and to nothing that reused its pid.
        (6, """
            ALTER TABLE instances ADD COLUMN init_pid INTEGER;
            ALTER TABLE instances ADD COLUMN init_identity TEXT

            """),
        // Passkeys (WebAuthn credentials): the id as base64url (what browsers send back), the
        // COSE public key as hex, its COSE algorithm, and the authenticator's last counter.
        (7, """
            CREATE TABLE passkeys (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                credential_id TEXT NOT NULL UNIQUE,
                public_key TEXT NOT NULL,
                algorithm INTEGER NOT NULL,
                sign_count INTEGER NOT NULL DEFAULT 0,
                name TEXT NOT NULL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
                last_used_at TEXT
            );
            CREATE INDEX passkeys_user ON passkeys(user_id);
            """),
        // LLM token usage the key proxy counted: one row per instance, UTC day and model. The
        // latency is the sum over `requests` (milliseconds from request to response end).
        (8, """
            CREATE TABLE llm_usage (
                instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
                day TEXT NOT NULL,
                model TEXT NOT NULL,
                requests INTEGER NOT NULL DEFAULT 0,
                input_tokens INTEGER NOT NULL DEFAULT 0,
                output_tokens INTEGER NOT NULL DEFAULT 0,
                errors INTEGER NOT NULL DEFAULT 0,
                latency_ms_sum INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (instance_id, day, model)
            )
            """),
    ]
}
