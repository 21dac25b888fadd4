"""
The agent's durable record of the claims it holds: one SQLite file.

A claim is written and committed before the agent answers, so a restarted
agent holds exactly what it promised. Per-GPU totals are kept in memory
beside the file and changed only under the store's lock, after the commit.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pools.agent import COMPUTE_UNITS_PER_GPU

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY,
    gpu_uuid TEXT NOT NULL,
    compute_units INTEGER NOT NULL CHECK (compute_units BETWEEN 1 AND 100),
    memory_mib INTEGER NOT NULL CHECK (memory_mib > 0),
    labels TEXT NOT NULL DEFAULT '{}',
    claimed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_gpu ON claims (gpu_uuid);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Claim:
    """One slice of one GPU, held for oCenter's allocation ``id``."""

    id: str
    gpu_uuid: str
    compute_units: int
    memory_mib: int
    labels: dict = field(default_factory=dict)
    claimed_at: float = 0.0

    def same_slice(self, other: Claim) -> bool:
        return (self.gpu_uuid, self.compute_units, self.memory_mib) == (
            other.gpu_uuid,
            other.compute_units,
            other.memory_mib,
        )

    def as_dict(self) -> dict:
        return asdict(self)


class DoesNotFit(Exception):
    """The GPU lacks the compute or memory for the slice."""

    def __init__(self, message, *, free_compute_units, free_memory_mib):
        super().__init__(message)
        self.free_compute_units = free_compute_units
        self.free_memory_mib = free_memory_mib


class IdInUse(Exception):
    """The id already names a claim for a different slice."""

    def __init__(self, existing: Claim):
        super().__init__(f"claim {existing.id} is already held for a different slice")
        self.existing = existing


class ClaimStore:
    """Claims in SQLite, with per-GPU usage totals in memory."""

    def __init__(self, path: Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used only under self._lock: SQLite has one writer
        # anyway, and the lock makes check-then-insert atomic.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of this process; only a power
        # loss could drop the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._claims: dict[str, Claim] = {}
        self._used: dict[str, tuple[int, int]] = {}
        for row in self._db.execute("SELECT id, gpu_uuid, compute_units, memory_mib, labels, claimed_at FROM claims"):
            self._remember(Claim(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5]))

    def _remember(self, claim: Claim):
        self._claims[claim.id] = claim
        units, mib = self._used.get(claim.gpu_uuid, (0, 0))
        self._used[claim.gpu_uuid] = (units + claim.compute_units, mib + claim.memory_mib)

    def _forget(self, claim: Claim):
        del self._claims[claim.id]
        units, mib = self._used[claim.gpu_uuid]
        self._used[claim.gpu_uuid] = (units - claim.compute_units, mib - claim.memory_mib)

    def all(self) -> list[Claim]:
        with self._lock:
            return sorted(self._claims.values(), key=lambda c: c.claimed_at)

    def get(self, claim_id: str) -> Claim | None:
        with self._lock:
            return self._claims.get(claim_id)

    def count(self) -> int:
        with self._lock:
            return len(self._claims)

    def used(self, gpu_uuid: str) -> tuple[int, int]:
        """(compute units, MiB) held on one GPU."""
        with self._lock:
            return self._used.get(gpu_uuid, (0, 0))

    def claim(self, claim: Claim, *, memory_mib_total: int) -> tuple[Claim, bool]:
        """Hold ``claim`` if its GPU has room; return (claim, created).

        Idempotent by id: the same slice asked again returns the claim held.
        """
        with self._lock:
            existing = self._claims.get(claim.id)
            if existing is not None:
                if existing.same_slice(claim):
                    return existing, False
                raise IdInUse(existing)
            units, mib = self._used.get(claim.gpu_uuid, (0, 0))
            free_units, free_mib = COMPUTE_UNITS_PER_GPU - units, memory_mib_total - mib
            if claim.compute_units > free_units or claim.memory_mib > free_mib:
                raise DoesNotFit(
                    f"GPU {claim.gpu_uuid} has {free_units} compute units and {free_mib} MiB free; "
                    f"the slice needs {claim.compute_units} units and {claim.memory_mib} MiB",
                    free_compute_units=free_units,
                    free_memory_mib=free_mib,
                )
            claim = Claim(**{**claim.as_dict(), "claimed_at": time.time()})
            self._db.execute(
                "INSERT INTO claims (id, gpu_uuid, compute_units, memory_mib, labels, claimed_at) VALUES (?, ?, ?, ?, ?, ?)",
                (claim.id, claim.gpu_uuid, claim.compute_units, claim.memory_mib, json.dumps(claim.labels), claim.claimed_at),
            )
            self._remember(claim)
            return claim, True

    def release(self, claim_id: str) -> Claim | None:
        """Drop a claim; None when it was not held (releasing twice is fine)."""
        with self._lock:
            claim = self._claims.get(claim_id)
            if claim is None:
                return None
            self._db.execute("DELETE FROM claims WHERE id = ?", (claim_id,))
            self._forget(claim)
            return claim

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

    def set_meta(self, key: str, value: str):
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self):
        with self._lock:
            self._db.close()
