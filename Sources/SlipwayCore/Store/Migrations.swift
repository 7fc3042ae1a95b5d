import GRDB

/// Numbered schema migrations. Never edit a shipped one: add the next.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: users, keys, apps, acl, config, storage, mounts, events") { db in
            try db.execute(sql: """
                CREATE TABLE users (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    is_admin BOOLEAN NOT NULL DEFAULT 0,
                    created_at DATETIME NOT NULL
                );
                CREATE TABLE ssh_keys (
                    id INTEGER PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    type TEXT NOT NULL,
                    base64 TEXT NOT NULL UNIQUE,
                    fingerprint TEXT NOT NULL UNIQUE,
                    bits INTEGER NOT NULL,
                    comment TEXT,
                    created_at DATETIME NOT NULL,
                    UNIQUE (user_id, name)
                );
                CREATE TABLE apps (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    created_at DATETIME NOT NULL,
                    created_by TEXT,
                    locked BOOLEAN NOT NULL DEFAULT 0,
                    deploy_branch TEXT,
                    deployed_revision TEXT
                );
                CREATE TABLE app_members (
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    role TEXT NOT NULL CHECK (role IN ('read', 'write', 'owner')),
                    added_at DATETIME NOT NULL,
                    PRIMARY KEY (app_id, user_id)
                );
                CREATE INDEX app_members_by_user ON app_members(user_id);
                CREATE TABLE config_vars (
                    id INTEGER PRIMARY KEY,
                    app_id INTEGER REFERENCES apps(id) ON DELETE CASCADE,
                    key TEXT NOT NULL,
                    value TEXT NOT NULL
                );
                -- NULLs are distinct in a UNIQUE constraint, so globals get their own index.
                CREATE UNIQUE INDEX config_vars_app_key ON config_vars(app_id, key) WHERE app_id IS NOT NULL;
                CREATE UNIQUE INDEX config_vars_global_key ON config_vars(key) WHERE app_id IS NULL;
                CREATE TABLE storages (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    owner_id INTEGER REFERENCES users(id) ON DELETE RESTRICT,
                    created_at DATETIME NOT NULL
                );
                CREATE TABLE mounts (
                    id INTEGER PRIMARY KEY,
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    storage_id INTEGER REFERENCES storages(id) ON DELETE RESTRICT,
                    host_path TEXT,
                    container_path TEXT NOT NULL,
                    phases TEXT NOT NULL,
                    readonly BOOLEAN NOT NULL DEFAULT 0,
                    created_at DATETIME NOT NULL,
                    CHECK ((storage_id IS NULL) <> (host_path IS NULL)),
                    UNIQUE (app_id, container_path)
                );
                CREATE INDEX mounts_by_storage ON mounts(storage_id);
                CREATE TABLE events (
                    id INTEGER PRIMARY KEY,
                    at DATETIME NOT NULL,
                    actor TEXT NOT NULL,
                    via TEXT NOT NULL,
                    command TEXT NOT NULL,
                    app TEXT,
                    outcome TEXT NOT NULL,
                    detail TEXT NOT NULL
                );
                CREATE INDEX events_by_app ON events(app);
                -- The audit log is append-only: the database itself refuses edits.
                CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                    BEGIN SELECT RAISE(ABORT, 'the events log is append-only'); END;
                CREATE TRIGGER events_no_delete BEFORE DELETE ON events
                    BEGIN SELECT RAISE(ABORT, 'the events log is append-only'); END;
                """)
        }
        migrator.registerMigration("v2: builds") { db in
            try db.execute(sql: """
                CREATE TABLE builds (
                    id INTEGER PRIMARY KEY,
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    revision TEXT NOT NULL,
                    image TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('building', 'succeeded', 'failed')),
                    started_by TEXT NOT NULL,
                    started_at DATETIME NOT NULL,
                    finished_at DATETIME,
                    error TEXT
                );
                CREATE INDEX builds_by_app ON builds(app_id, id);
                """)
        }
        migrator.registerMigration("v3: releases and processes") { db in
            try db.execute(sql: """
                CREATE TABLE releases (
                    id INTEGER PRIMARY KEY,
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    version INTEGER NOT NULL,
                    image TEXT NOT NULL,
                    revision TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    -- JSON snapshot of everything the release runs with (ReleaseSnapshot).
                    snapshot TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('deploying', 'succeeded', 'failed')),
                    error TEXT,
                    started_by TEXT NOT NULL,
                    started_at DATETIME NOT NULL,
                    finished_at DATETIME,
                    UNIQUE (app_id, version)
                );
                ALTER TABLE apps ADD COLUMN current_release_id INTEGER REFERENCES releases(id) ON DELETE SET NULL;
                CREATE TABLE formations (
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    process_type TEXT NOT NULL,
                    quantity INTEGER NOT NULL CHECK (quantity >= 0),
                    PRIMARY KEY (app_id, process_type)
                );
                -- ps:stop: the app's processes stay stopped, across server restarts too.
                ALTER TABLE apps ADD COLUMN processes_stopped BOOLEAN NOT NULL DEFAULT 0;
                -- The web containers the router sends the app's traffic to.
                CREATE TABLE endpoints (
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    container_name TEXT NOT NULL,
                    address TEXT NOT NULL,
                    PRIMARY KEY (app_id, container_name)
                );
                CREATE TABLE deploy_locks (
                    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
                    holder TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    origin TEXT NOT NULL,
                    release_version INTEGER,
                    acquired_at DATETIME NOT NULL
                );
                """)
        }
        migrator.registerMigration("v4: domains and certificates") { db in
            try db.execute(sql: """
                -- Custom domains; a name belongs to one app only. (<app>.<global domain> is implied.)
                CREATE TABLE domains (
                    name TEXT PRIMARY KEY,
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    added_by TEXT NOT NULL,
                    added_at DATETIME NOT NULL
                );
                CREATE INDEX domains_by_app ON domains(app_id, name);
                -- An app's TLS certificate; the PEM files live under <data>/certs/<app id>/.
                CREATE TABLE certificates (
                    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
                    subject TEXT NOT NULL,
                    issuer TEXT NOT NULL,
                    -- JSON array of the DNS names it covers.
                    names TEXT NOT NULL,
                    not_before DATETIME NOT NULL,
                    not_after DATETIME NOT NULL,
                    fingerprint TEXT NOT NULL,
                    added_by TEXT NOT NULL,
                    added_at DATETIME NOT NULL
                );
                -- Server-wide values set over SSH (domains:set-global), over the config file's.
                CREATE TABLE server_settings (
                    key TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v5: events by app id") { db in
            // Events are filtered by the app's identity, not its name, so an app that
            // takes a destroyed app's name does not inherit its history. No foreign key:
            // the log outlives the app. An old event belongs to today's app of its name
            // only if it is not older than that app; older ones belonged to a destroyed one.
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN app_id INTEGER;
                DROP TRIGGER events_no_update;
                UPDATE events SET app_id = (SELECT apps.id FROM apps WHERE apps.name = events.app AND apps.created_at <= events.at)
                    WHERE app IS NOT NULL;
                CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                    BEGIN SELECT RAISE(ABORT, 'the events log is append-only'); END;
                CREATE INDEX events_by_app_id ON events(app_id);
                -- SQLite hands the largest row id out again once its row is deleted: ids
                -- that must never come back (an app's, a storage's) are taken from here.
                CREATE TABLE id_high_water (
                    name TEXT PRIMARY KEY,
                    value INTEGER NOT NULL
                );
                INSERT INTO id_high_water (name, value) SELECT 'apps', COALESCE(MAX(id), 0) FROM apps;
                """)
        }
        migrator.registerMigration("v-resources: resource limits") { db in
            try db.execute(sql: """
                -- resource:limit / resource:reserve values of an app ('_default_') or one of
                -- its process types ('run' and 'build' included); NULL inherits.
                CREATE TABLE resource_settings (
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    process_type TEXT NOT NULL,
                    memory INTEGER CHECK (memory IS NULL OR memory > 0),
                    memory_reservation INTEGER CHECK (memory_reservation IS NULL OR memory_reservation > 0),
                    nano_cpus INTEGER CHECK (nano_cpus IS NULL OR nano_cpus > 0),
                    pids INTEGER CHECK (pids IS NULL OR pids > 0),
                    PRIMARY KEY (app_id, process_type)
                );
                """)
        }
        migrator.registerMigration("v6: storage by id") { db in
            // Storage ids are never handed out again (see `freshID`): a release's snapshot
            // names its storage by id, so a name destroyed and made again by someone
            // else is never the storage an old release binds. Older snapshots carry no
            // id and keep binding their directory as before.
            try db.execute(sql: """
                INSERT INTO id_high_water (name, value) SELECT 'storages', COALESCE(MAX(id), 0) FROM storages WHERE true
                    ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value);
                """)
        }
        migrator.registerMigration("v-process-settings: restart policy and checks") { db in
            try db.execute(sql: """
                -- ps:set APP restart-policy and checks:set APP wait-to-retire; NULL: the default.
                CREATE TABLE process_settings (
                    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
                    restart_policy TEXT,
                    wait_to_retire INTEGER CHECK (wait_to_retire IS NULL OR wait_to_retire BETWEEN 0 AND 3600)
                );
                -- checks:disable / checks:skip of one process type, or of all ('_all_'); a type's
                -- own row wins over '_all_'. No row: checks run (checks:enable).
                CREATE TABLE check_modes (
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    process_type TEXT NOT NULL,
                    mode TEXT NOT NULL CHECK (mode IN ('disabled', 'skipped')),
                    PRIMARY KEY (app_id, process_type)
                );
                """)
        }
        migrator.registerMigration("v-app-renames: renames in progress") { db in
            // apps:rename of a deployed app starts processes under the new name before the
            // app's row takes it: this row reserves both names meanwhile (apps:create and
            // apps:rename refuse them) and tells the server's recovery which name's
            // containers and proxy file to remove if the rename was cut short.
            try db.execute(sql: """
                CREATE TABLE app_renames (
                    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
                    old_name TEXT NOT NULL,
                    new_name TEXT NOT NULL,
                    started_at DATETIME NOT NULL
                );
                """)
        }
        migrator.registerMigration("v-storage-properties: chown and mode of storage entries") { db in
            // storage:create --chown/--mode and storage:set: NULL chown gives the directory
            // to the image's user at each start; NULL mode leaves the permissions alone.
            try db.execute(sql: """
                ALTER TABLE storages ADD COLUMN chown TEXT;
                ALTER TABLE storages ADD COLUMN mode TEXT;
                """)
        }
        migrator.registerMigration("v-output-records: stored output of builds, deploys, tasks and runs") { db in
            // The text is a file under <data-dir>/outputs/<app id>/<id>.log (OutputService);
            // status is open-ended (running, succeeded, failed, interrupted, skipped, stopped).
            try db.execute(sql: """
                CREATE TABLE output_records (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    kind TEXT NOT NULL,
                    ref TEXT NOT NULL,
                    status TEXT NOT NULL,
                    started_at DATETIME NOT NULL,
                    finished_at DATETIME,
                    bytes INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX output_records_by_app_kind ON output_records(app_id, kind, id);
                CREATE INDEX output_records_running ON output_records(status) WHERE status = 'running';
                """)
        }
        migrator.registerMigration("v-cron: cron runs and suspensions") { db in
            // One row per cron run (scheduled or cron:run), also the skipped ones; status:
            // running, succeeded, failed, skipped, stopped, timed out, interrupted. The
            // entries themselves live in the release's snapshot (its plan's `cron`).
            // A suspension's entry_id '*' suspends every entry of the app.
            try db.execute(sql: """
                CREATE TABLE cron_runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    entry_id TEXT NOT NULL,
                    command TEXT NOT NULL,
                    trigger TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    status TEXT NOT NULL,
                    exit_code INTEGER,
                    container TEXT,
                    output_id INTEGER,
                    detail TEXT,
                    scheduled_for DATETIME,
                    started_at DATETIME NOT NULL,
                    finished_at DATETIME
                );
                CREATE INDEX cron_runs_by_entry ON cron_runs(app_id, entry_id, id);
                CREATE INDEX cron_runs_running ON cron_runs(status) WHERE status = 'running';
                CREATE TABLE cron_suspensions (
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    entry_id TEXT NOT NULL,
                    suspended_by TEXT NOT NULL,
                    suspended_at DATETIME NOT NULL,
                    PRIMARY KEY (app_id, entry_id)
                );
                """)
        }
        migrator.registerMigration("v-services: backing services (postgres, redis) and their links to apps") { db in
            // A service is owned like storage (owner_id NULL: the local admin's). Its data
            // lives in <data-dir>/services/<id>/data (DatastoreService). A link's alias is
            // the app's config var holding the service's URL; an app's links go with it,
            // and a service with links cannot be deleted (RESTRICT): destroy refuses first.
            try db.execute(sql: """
                CREATE TABLE services (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL CHECK (kind IN ('postgres', 'redis')),
                    name TEXT NOT NULL,
                    owner_id INTEGER REFERENCES users(id) ON DELETE RESTRICT,
                    image TEXT NOT NULL,
                    password TEXT NOT NULL,
                    state TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    UNIQUE (kind, name)
                );
                CREATE TABLE service_links (
                    service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE RESTRICT,
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    alias TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    PRIMARY KEY (service_id, app_id)
                );
                CREATE INDEX service_links_by_app ON service_links(app_id);
                """)
        }
        migrator.registerMigration("v-acme: automatic certificates (letsencrypt:*)") { db in
            // One row per app with ACME on (letsencrypt:enable); its certificate itself is
            // the app's row in `certificates`, as with certs:add. `issued_fingerprint` is the
            // one ACME put there (disable removes only that one); `uncovered` the names the
            // last attempt could not validate (JSON); `next_attempt_at` the backoff after a
            // failure. Global values (email, server, ca-bundle) are server_settings rows.
            try db.execute(sql: """
                CREATE TABLE acme_apps (
                    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
                    enabled_by TEXT NOT NULL,
                    enabled_at DATETIME NOT NULL,
                    last_attempt_at DATETIME,
                    last_error TEXT,
                    last_issued_at DATETIME,
                    issued_fingerprint TEXT,
                    uncovered TEXT NOT NULL DEFAULT '{}',
                    failures INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at DATETIME
                );
                """)
        }
        migrator.registerMigration("v-service-backups: backup schedules of backing services") { db in
            // The backups themselves are files (<data-dir>/services/<id>/backups, named by
            // time); this is only each service's schedule, which goes with the service.
            try db.execute(sql: """
                CREATE TABLE service_backup_schedules (
                    service_id INTEGER PRIMARY KEY REFERENCES services(id) ON DELETE CASCADE,
                    schedule TEXT NOT NULL,
                    keep INTEGER NOT NULL CHECK (keep >= 1),
                    created_at DATETIME NOT NULL
                );
                """)
        }
        migrator.registerMigration("v-scheduler: the scheduler of each app (scheduler:set)") { db in
            // A row only for an app that set its own; the others follow the default (the
            // `scheduler` server_settings row, else local). Config, storage, domains and
            // releases do not depend on it, so switching back and forth keeps them.
            try db.execute(sql: """
                CREATE TABLE app_schedulers (
                    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
                    scheduler TEXT NOT NULL CHECK (scheduler IN ('local', 'kubernetes')),
                    set_by TEXT NOT NULL,
                    set_at DATETIME NOT NULL
                );
                """)
        }
        migrator.registerMigration("v-cluster-restarts: when ps:restart last restarted each process type on a cluster") { db in
            // Rendered as the pod template's slipway.dev/restarted-at annotation (as kubectl
            // rollout restart does), so every later rollout applies the same value: a
            // ps:scale or config change keeps it and restarts nothing it would not anyway.
            try db.execute(sql: """
                CREATE TABLE cluster_restarts (
                    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
                    process_type TEXT NOT NULL,
                    restarted_at TEXT NOT NULL,
                    PRIMARY KEY (app_id, process_type)
                );
                """)
        }
        return migrator
    }
}
