"""The coordinator's SQLite schema (``coordinator.db``): append-only migrations."""

from __future__ import annotations

from collections.abc import Sequence

MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE nodes (
        node_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        online INTEGER NOT NULL DEFAULT 0,
        backend TEXT NOT NULL DEFAULT '',
        device TEXT NOT NULL DEFAULT '',
        gemm_tflops REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE tasks (
        task_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        seed INTEGER NOT NULL,
        n INTEGER NOT NULL,
        dtype TEXT NOT NULL,
        issued_ts REAL NOT NULL,
        deadline_ts REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_open ON tasks (node_id, done);
    CREATE TABLE work (
        sender TEXT NOT NULL,
        work_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        ts REAL NOT NULL,
        accepted INTEGER NOT NULL,
        reason TEXT NOT NULL,
        credited INTEGER NOT NULL,
        entry_id INTEGER,
        PRIMARY KEY (sender, work_id),
        UNIQUE (sender, seq)
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        account TEXT NOT NULL,
        amount INTEGER NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (length(reason) > 0),
        category TEXT NOT NULL DEFAULT '',
        season TEXT NOT NULL DEFAULT '',
        ref TEXT,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX ledger_account ON ledger (account, id);
    CREATE INDEX ledger_board ON ledger (season, category, account);
    CREATE UNIQUE INDEX ledger_ref ON ledger (kind, account, ref) WHERE ref IS NOT NULL;
    -- Running totals per board, kept in the same transaction as the ledger so a page of a
    -- 100,000-node board is an index range scan, not a GROUP BY over the whole ledger.
    CREATE TABLE board (
        period TEXT NOT NULL,
        category TEXT NOT NULL,
        account TEXT NOT NULL,
        total INTEGER NOT NULL,
        PRIMARY KEY (period, category, account)
    );
    CREATE INDEX board_rank ON board (period, category, total DESC, account);
    CREATE TABLE supply (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        minted INTEGER NOT NULL CHECK (minted >= 0 AND minted <= 1000000000000000000),
        burned INTEGER NOT NULL CHECK (burned >= 0 AND burned <= minted)
    );
    INSERT INTO supply (id, minted, burned) VALUES (1, 0, 0);
    """,
    # 2: the game (core/coordinator/game_store.py): quests, stakes, reputation, badges,
    # events, awards.
    """
    CREATE TABLE quests (
        node_id TEXT NOT NULL,
        quest_id TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (node_id, quest_id)
    );
    CREATE TABLE accounts (
        node_id TEXT PRIMARY KEY,
        staked INTEGER NOT NULL DEFAULT 0 CHECK (staked >= 0),
        consecutive INTEGER NOT NULL DEFAULT 0,
        verified INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        tflop_hours TEXT NOT NULL DEFAULT '0',
        quests_claimed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE achievements (
        node_id TEXT NOT NULL,
        achievement TEXT NOT NULL,
        earned_ts REAL NOT NULL,
        PRIMARY KEY (node_id, achievement)
    );
    CREATE TABLE multiplier_events (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        factor TEXT NOT NULL,
        start REAL NOT NULL,
        "end" REAL NOT NULL,
        announced_at REAL NOT NULL
    );
    CREATE TABLE awards (
        award_id TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        entry_id INTEGER
    );
    CREATE TABLE game_kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
""",  # 3: replay protection that survives a restart (InboundFilter high-water marks).
    """
    CREATE TABLE high_water (
        sender TEXT NOT NULL,
        topic TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (sender, topic)
    );
    """,
    # 4: protocol v2. Work units (a spec, a committed Merkle root, sampled verification)
    # replace the toy GEMM tasks; capability is measured from verified units; unstaking has
    # an unbonding period. v1 tasks and results mean nothing to v2 nodes: dropped.
    """
    DROP TABLE tasks;
    DROP TABLE work;
    CREATE TABLE units (
        task_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        seed BLOB NOT NULL,
        m INTEGER NOT NULL,
        n INTEGER NOT NULL,
        k INTEGER NOT NULL,
        block INTEGER NOT NULL,
        flops INTEGER NOT NULL,
        issued_ts REAL NOT NULL,
        deadline_ts REAL NOT NULL,
        root TEXT,
        committed_ts REAL,
        state TEXT NOT NULL CHECK (state IN ('issued', 'committed', 'done'))
    );
    CREATE INDEX units_open ON units (state, issued_ts);
    CREATE TABLE verdicts (
        node_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        accepted INTEGER NOT NULL,
        reason TEXT NOT NULL,
        flops INTEGER NOT NULL,
        credited INTEGER NOT NULL,
        entry_id INTEGER,
        ts REAL NOT NULL,
        PRIMARY KEY (node_id, task_id)
    );
    CREATE INDEX verdicts_recent ON verdicts (node_id, ts);
    ALTER TABLE nodes ADD COLUMN rate_flops REAL NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN unbonding INTEGER NOT NULL DEFAULT 0 CHECK (unbonding >= 0);
    ALTER TABLE accounts ADD COLUMN unbond_at REAL NOT NULL DEFAULT 0;
    """,
    # 5: one worker per GPU. Units go to one of a node's devices; each device is measured on
    # its own (its rate sizes its units); a node's capability is the sum of its devices'.
    """
    ALTER TABLE units ADD COLUMN worker INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE node_workers (
        node_id TEXT NOT NULL,
        worker INTEGER NOT NULL,
        rate_flops REAL NOT NULL,
        PRIMARY KEY (node_id, worker)
    );
    """,
    # 6: inference as network work. A job's fee is held (an "escrow" entry) until its tasks
    # are delivered; each task keeps the agreed vectors and who agreed. Quality rounds score
    # nodes' encoders on known answers.
    """
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        sentences INTEGER NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        state TEXT NOT NULL CHECK (state IN ('running', 'delivered', 'failed')),
        reason TEXT NOT NULL DEFAULT '',
        submitted_ts REAL NOT NULL,
        finished_ts REAL
    );
    CREATE INDEX jobs_requester ON jobs (requester, submitted_ts);
    CREATE TABLE job_tasks (
        task_id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        first INTEGER NOT NULL,
        texts TEXT NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        state TEXT NOT NULL CHECK (state IN ('open', 'agreed', 'failed')),
        dim INTEGER,
        embeddings BLOB,
        provenance TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX job_tasks_job ON job_tasks (job_id, first);
    CREATE TABLE quality_rounds (
        round_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        issued_ts REAL NOT NULL,
        deadline_ts REAL NOT NULL,
        questions TEXT NOT NULL,
        answers TEXT,
        known INTEGER NOT NULL DEFAULT 0,
        correct INTEGER NOT NULL DEFAULT 0,
        latency_s REAL,
        state TEXT NOT NULL CHECK (state IN ('sent', 'scored', 'missed'))
    );
    CREATE INDEX quality_node ON quality_rounds (node_id, issued_ts);
    -- A worker's lost seats on inference tasks, with the reason (its wallet lists them).
    CREATE TABLE inference_rejections (
        node_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (node_id, task_id)
    );
    CREATE INDEX inference_rejections_recent ON inference_rejections (node_id, ts);
    """,
    # Data contribution and validation (core/coordinator/data_registry.py, data_tasks.py).
    """
    -- Record bytes by their SHA-256: one copy whatever the datasets that hold it.
    CREATE TABLE data_blobs (
        hash TEXT PRIMARY KEY,
        data BLOB NOT NULL
    );
    -- One upload in progress per contributor: its manifest, and the pieces received so far.
    CREATE TABLE data_uploads (
        upload_id TEXT PRIMARY KEY,
        contributor TEXT NOT NULL UNIQUE,
        dataset TEXT NOT NULL,
        kind TEXT NOT NULL,
        licence TEXT NOT NULL,
        manifest TEXT NOT NULL,
        created_ts REAL NOT NULL
    );
    CREATE TABLE data_parts (
        upload_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        offset INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (upload_id, hash, offset)
    );
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        contributor TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        licence TEXT NOT NULL,
        records INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        labels TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'validated', 'failed')),
        seats_wanted INTEGER NOT NULL,
        registered_ts REAL NOT NULL,
        validated_ts REAL,
        accepted INTEGER NOT NULL DEFAULT 0,
        paid_records INTEGER NOT NULL DEFAULT 0,
        report TEXT
    );
    CREATE TABLE dataset_records (
        dataset_id INTEGER NOT NULL REFERENCES datasets (id),
        ord INTEGER NOT NULL,
        hash TEXT NOT NULL,
        label TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, ord)
    );
    CREATE INDEX dataset_records_hash ON dataset_records (hash, dataset_id);
    -- A validator's seat on a dataset's validation: one per validator and dataset.
    CREATE TABLE data_seats (
        task_id TEXT PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets (id),
        validator TEXT NOT NULL,
        issued_ts REAL NOT NULL,
        deadline_ts REAL NOT NULL,
        state TEXT NOT NULL CHECK (
            state IN ('open', 'reported', 'agreed', 'disagreed', 'expired', 'closed')
        ),
        report TEXT,
        reported_ts REAL,
        UNIQUE (dataset_id, validator)
    );
    CREATE INDEX data_seats_validator ON data_seats (validator, state);
    """,
    # 7: governance (core/coordinator/governance.py): proposals the operator put, one vote
    # per (proposal, node), replaced while the window is open; ``final`` is the tally frozen
    # when the window closed (JSON), written once.
    """
    CREATE TABLE proposals (
        proposal_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        options TEXT NOT NULL,
        start REAL NOT NULL,
        "end" REAL NOT NULL CHECK ("end" > start),
        created_ts REAL NOT NULL,
        final TEXT
    );
    CREATE TABLE votes (
        proposal_id TEXT NOT NULL REFERENCES proposals (proposal_id),
        node_id TEXT NOT NULL,
        option TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (proposal_id, node_id)
    );
    """,
    # 8: the wallet without scanning an account's whole ledger (a busy node adds ~43,000
    # entries a day): what it earned today and per hour or day is a range by time (a
    # covering index), and what it owns is a running total that a trigger keeps in the same
    # transaction as every ledger row, whichever code inserts it.
    """
    CREATE INDEX ledger_account_ts ON ledger (account, ts, kind, amount);
    CREATE TABLE account_owned (
        account TEXT PRIMARY KEY,
        owned INTEGER NOT NULL
    );
    INSERT INTO account_owned (account, owned)
        SELECT account, SUM(amount) FROM ledger GROUP BY account;
    CREATE TRIGGER ledger_owned AFTER INSERT ON ledger
    BEGIN
        INSERT INTO account_owned (account, owned) VALUES (NEW.account, NEW.amount)
            ON CONFLICT (account) DO UPDATE SET owned = owned + excluded.owned;
    END;
    """,
)
