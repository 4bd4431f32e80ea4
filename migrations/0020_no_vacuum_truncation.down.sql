-- Bosun 0020 down: vacuums of bosun.jobs truncate its empty end again.
ALTER TABLE bosun.jobs RESET (vacuum_truncate);
