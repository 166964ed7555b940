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
        // Passkeys (WebAuthn credentials): the id as base64url (what browsers send back), the
        // COSE public key as hex, its COSE algorithm, and the authenticator's last counter.
        (3, """
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
    ]
}
