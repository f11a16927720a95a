"""After a database restore: erasures and key destructions since the backup stay in force.

``civicguard backup restore`` puts the database back as it was when the backup was taken. The
keys were never in the backup, so what was sealed under a key destroyed since stays unreadable;
but rows that are not sealed (consent spans, readings under a pseudonym, the erasure's own
record) came back, and ``key_events`` may call destroyed keys alive. :func:`after_restore`
re-applies every erasure of the ledger and reconciles the key events, and says what it did.
"""

from __future__ import annotations

from dataclasses import dataclass

from civicguard.citizens import Citizens
from civicguard.citizens.retention import SubjectKeyJournal
from civicguard.citizens.vault import key_name
from civicguard.privacy.keys import KeyStore
from civicguard.privacy.pseudonyms import PREFIX as PSEUDONYM_PREFIX
from civicguard.store.backup import DESTROYED_BEFORE_RESTORE, reconcile_key_events
from civicguard.store.lifecycle import DESTROYED


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What :func:`after_restore` re-applied and reconciled."""

    #: Erasures that found data of theirs in the restored database.
    erasures: int
    #: Rows those erasures deleted again (or put back as they were after them).
    rows: int
    #: Pseudonym keys the restored ``key_events`` called alive, destroyed since the backup.
    pseudonym_keys: int
    #: Subject keys destroyed since the backup (by an erasure, or by retention).
    subject_keys: int

    @property
    def keys(self) -> int:
        """Every key destroyed since the backup that the restored database knew alive."""
        return self.pseudonym_keys + self.subject_keys

    def summary(self) -> str:
        """One line for the operator, e.g. ``re-applied 1 erasure (4 rows); 3 keys ...``."""
        erasures = f"re-applied {self.erasures} erasure{'' if self.erasures == 1 else 's'}"
        if self.erasures:
            erasures += f" ({self.rows} row{'' if self.rows == 1 else 's'})"
        keys = (
            f"{self.keys} key destroyed since this backup stays destroyed"
            if self.keys == 1
            else f"{self.keys} keys destroyed since this backup stay destroyed"
        )
        return (
            f"{erasures}; {keys} ({self.pseudonym_keys} pseudonym, {self.subject_keys} subject; "
            f"{self.pseudonym_keys} recorded again in key_events)"
        )


def after_restore(
    citizens: Citizens, keys: KeyStore, journal: SubjectKeyJournal, at: float
) -> RestoreReport:
    """Re-apply the ledger's erasures and reconcile key events on a just-restored database."""
    subjects = citizens.rights.records.subjects
    erased = citizens.ledger.entries()
    # Subjects the restored database remembers with a key that is gone: erased since the
    # backup (the ledger knows them) or retired by retention (recorded again, as it does).
    keyless = {h for h in subjects.remembered() if not citizens.vault.has_key(h)}
    retired = sorted(keyless - set(erased))
    for handle in retired:
        journal.record(key_name(handle), DESTROYED, at, DESTROYED_BEFORE_RESTORE, replace=True)
    reapplied = citizens.rights.reapply()
    engine = citizens.rights.records.engine
    pseudonyms = reconcile_key_events(
        engine, lambda name: keys.get(name) is not None, PSEUDONYM_PREFIX, at
    )
    return RestoreReport(
        erasures=reapplied.erasures,
        rows=reapplied.rows,
        pseudonym_keys=len(pseudonyms),
        subject_keys=len(retired) + reapplied.erasures,
    )
